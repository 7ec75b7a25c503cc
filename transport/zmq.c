typedef int shoal__placeholder_zmq; /* placeholder, replaced by its implementation */
