"""Data-io for GASS: source manifests and the on-the-fly GASS mixer."""
