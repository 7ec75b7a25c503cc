typedef int shoal__placeholder_json; /* placeholder, replaced by its implementation */
