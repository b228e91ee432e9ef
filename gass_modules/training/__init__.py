"""Training: the recipes' library parts (the GASS recipe in ``gass_recipe``)."""
