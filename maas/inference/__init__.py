"""Model objects, no HTTP and no AWS: packages, loader, catalog, model slot, sessions, embedders, classifiers,
images."""
