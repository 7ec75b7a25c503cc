typedef int shoal__placeholder_errors; /* placeholder, replaced by its implementation */
