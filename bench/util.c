typedef int shoal__placeholder_util; /* placeholder, replaced by its implementation */
