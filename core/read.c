typedef int shoal__placeholder_read; /* placeholder, replaced by its implementation */
