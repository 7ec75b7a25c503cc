typedef int shoal__placeholder_hlc; /* placeholder, replaced by its implementation */
