typedef int shoal__placeholder_value; /* placeholder, replaced by its implementation */
