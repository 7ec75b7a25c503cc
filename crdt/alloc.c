typedef int shoal__placeholder_alloc; /* placeholder, replaced by its implementation */
