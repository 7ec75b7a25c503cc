typedef int shoal__placeholder_envelope; /* placeholder, replaced by its implementation */
