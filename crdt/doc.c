typedef int shoal__placeholder_doc; /* placeholder, replaced by its implementation */
