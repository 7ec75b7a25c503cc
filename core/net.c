typedef int shoal__placeholder_net; /* placeholder, replaced by its implementation */
