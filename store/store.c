typedef int shoal__placeholder_store; /* placeholder, replaced by its implementation */
