typedef int shoal__placeholder_replica; /* placeholder, replaced by its implementation */
