typedef int shoal__placeholder_change; /* placeholder, replaced by its implementation */
