typedef int shoal__placeholder_session; /* placeholder, replaced by its implementation */
