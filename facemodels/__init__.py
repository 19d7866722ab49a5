"""Morphable face models and geometry: FLAME via smplx, linear BFM, the procedural head model, landmarks, cameras, rotations, Procrustes, CPU renderer."""
