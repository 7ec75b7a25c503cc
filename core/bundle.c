typedef int shoal__placeholder_bundle; /* placeholder, replaced by its implementation */
