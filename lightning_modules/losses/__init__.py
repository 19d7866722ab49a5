"""Losses: NGLL, ResLL (+Exp), Vertex-Edge, Wing+MSE, Zhao's local+pairs. Plain nn.Modules."""
