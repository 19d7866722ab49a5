# CPU stand-in for kaolin 0.12's chamfer_distance(p1, p2, w1, w2, squared=True):
# w1 * mean_i min_j |p1_i - p2_j|^2 + w2 * mean_j min_i |p2_j - p1_i|^2, per batch item.
def chamfer_distance(p1, p2, w1=1.0, w2=1.0, squared=True):
    d = ((p1[:, :, None, :].double() - p2[:, None, :, :].double()) ** 2).sum(-1)
    if not squared:
        d = d.sqrt()
    return (w1 * d.min(2).values.mean(1) + w2 * d.min(1).values.mean(1)).to(p1.dtype)
