typedef int shoal__placeholder_buf; /* placeholder, replaced by its implementation */
