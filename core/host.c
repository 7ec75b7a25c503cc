typedef int shoal__placeholder_host; /* placeholder, replaced by its implementation */
