typedef int shoal__placeholder_list; /* placeholder, replaced by its implementation */
