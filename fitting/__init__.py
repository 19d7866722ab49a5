"""Landmark-to-mesh fitting: Theseus Levenberg-Marquardt FLAME fitting, BFM landmark fitting, non-metric MDS, 3D evaluation."""
