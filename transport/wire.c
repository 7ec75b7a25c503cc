typedef int shoal__placeholder_wire; /* placeholder, replaced by its implementation */
