typedef int shoal__placeholder_events; /* placeholder, replaced by its implementation */
