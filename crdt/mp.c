typedef int shoal__placeholder_mp; /* placeholder, replaced by its implementation */
