"""LightningDataModules for DAD-3DHeads, 300W-LP, AFLW2000-3D, CoMA and BFM, plus writers of the procedural world in each format."""
