#!/usr/bin/python3
"""Float32 error of Winograd F(m x n, 3 x 3) tiles, in the metric the tests hold
the Winograd kernels to, for tile sizes clcnn does not run:

    /usr/bin/python3 tools/winograd_error.py [--tiles 20000] [--seed 7]

clcnn runs F(2x2, 3x3) only (kernels/conv2d_winograd.cl). Larger output tiles
take fewer products per output (16 for 4 outputs; 24 for 8 with F(2x4); 36
for 16 with F(4x4)) but their transforms reach further and multiply by
larger constants, so their float32 rounding grows. tests/test_conv_stride1.c
holds every output's error to 1e-5 of its magnitude (the sum of |x| |w| over
its window), the magnitude held to the largest in its tile; F(2x2) reaches
4e-6 there over its 150 shapes.

This simulates one tile at a time as the fused kernel computes it: U = G g
G^T and V = B^T d B in float32, the products added over the channels with
one rounding each (fma), then A^T M A; inputs and weights uniform in [-1, 1]
as the tests draw them, a quarter of the tiles with a row or column of
padding's zeros. The transforms for points p_0 .. p_{n-2} and infinity are
made here (A^T and G from the points, B^T solved from the identity the three
must satisfy) and checked to compute the correlation exactly in float64.
It prints the worst error over --tiles tiles for a few channel counts: the
simulation's figures are lower than the test's (fewer samples, no bias),
so it is the ratio to F(2x2) that carries over.
"""
import argparse

import numpy as np


def transforms(m, points):
    """A^T (m x n), G (n x 3) and B^T (n x n) of F(m, 3) for n - 1 finite points."""
    r, n = 3, m + 2
    assert len(points) == n - 1
    at, g = np.zeros((m, n)), np.zeros((n, r))
    for j, p in enumerate(points):
        at[:, j] = [p**i for i in range(m)]
        scale = np.prod([p - q for q in points if q != p])
        g[j] = [p**k / scale for k in range(r)]
    at[m - 1, n - 1] = g[n - 1, r - 1] = 1.0
    # sum_j A^T[i, j] G[j, k] B^T[j, l] = [l == i + k] for every i, k, l.
    products = np.array([[at[i, j] * g[j, k] for j in range(n)] for i in range(m) for k in range(r)])
    bt = np.zeros((n, n))
    for l in range(n):
        wanted = np.array([1.0 if l == i + k else 0.0 for i in range(m) for k in range(r)])
        bt[:, l] = np.linalg.lstsq(products, wanted, rcond=None)[0]
    rng = np.random.default_rng(0)
    d, w = rng.standard_normal(n), rng.standard_normal(r)
    exact = [sum(w[k] * d[i + k] for k in range(r)) for i in range(m)]
    assert np.allclose(at @ ((g @ w) * (bt @ d)), exact, atol=1e-9)
    return at, g, bt


def worst_error(rows, cols, channels, tiles, rng):
    """The worst scaled error of F(rows x cols, 3x3) over `tiles` random tiles."""
    (ath, gh, bth), (atw, gw, btw) = transforms(*rows), transforms(*cols)
    mh, mw = ath.shape[0], atw.shape[0]
    f32 = np.float32
    ath, gh, bth, atw, gw, btw = (a.astype(f32) for a in (ath, gh, bth, atw, gw, btw))
    d = rng.uniform(-1, 1, (tiles, channels, mh + 2, mw + 2)).astype(f32)
    edge = rng.integers(0, 4, tiles)
    d[edge == 1, :, 0, :] = 0
    d[edge == 2, :, :, 0] = 0
    d[edge == 3, :, -1, :] = 0
    w = rng.uniform(-1, 1, (tiles, channels, 3, 3)).astype(f32)
    u = np.einsum("ab,tcbd,ed->tcae", gh, w, gw).astype(f32)
    v = np.einsum("ab,tcbd,ed->tcae", bth, d, btw).astype(f32)
    m = np.zeros((tiles, mh + 2, mw + 2), dtype=f32)
    for c in range(channels):  # fma: the product and the sum rounded once
        m = (m.astype(np.float64) + u[:, c].astype(np.float64) * v[:, c]).astype(f32)
    y = np.einsum("ab,tbc,dc->tad", ath, m, atw).astype(f32)
    exact, magnitude = np.zeros(y.shape), np.zeros(y.shape)
    for i in range(mh):
        for j in range(mw):
            terms = d[:, :, i : i + 3, j : j + 3].astype(np.float64) * w
            exact[:, i, j] = terms.sum(axis=(1, 2, 3))
            magnitude[:, i, j] = np.abs(terms).sum(axis=(1, 2, 3))
    return (np.abs(y - exact).max(axis=(1, 2)) / magnitude.max(axis=(1, 2))).max()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiles", type=int, default=20000, help="tiles per figure (default 20000)")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    two, three = (2, [0, 1, -1]), (3, [0, 1, -1, 0.5])
    four_half, four_two = (4, [0, 1, -1, 0.5, -2]), (4, [0, 1, -1, 2, -2])
    shapes = [
        ("F(2x2), points 0, +-1 (clcnn's)", two, two),
        ("F(2x3), points 0, +-1, 1/2", two, three),
        ("F(2x4), points 0, +-1, 1/2, -2", two, four_half),
        ("F(2x4), points 0, +-1, +-2", two, four_two),
        ("F(3x3), points 0, +-1, 1/2", three, three),
        ("F(4x4), points 0, +-1, 1/2, -2", four_half, four_half),
        ("F(4x4), points 0, +-1, +-2", four_two, four_two),
    ]
    counts = (1, 3, 16, 64)
    print("| tile | " + " | ".join("C = %d" % c for c in counts) + " |")
    print("|---|" + "---:|" * len(counts))
    for name, rows, cols in shapes:
        errors = [worst_error(rows, cols, c, args.tiles if c < 64 else args.tiles // 4, rng)
                  for c in counts]
        print("| %s | %s |" % (name, " | ".join("%.1e" % e for e in errors)))


if __name__ == "__main__":
    main()
