"""Walking order inside a turf: street-sorted (street, side, house number numerically, building, unit) and
route-optimized (nearest neighbour + 2-opt on walking distance, keeping a street side together where it costs
little). Distances are straight lines in metres in the data's UTM zone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["house_number_key", "natural_key", "path_length", "route_order", "street_order"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_NUM = r"^\s*(\d+)"


def house_number_key(values: pd.Series) -> tuple[FloatArray, pd.Series]:
    """Numeric part and suffix of house numbers: ``"2" < "10" < "100"``, ``"12" < "12A" < "12B"``,
    a range ``"12-14"`` sorts as 12; numbers without digits sort last (``inf``).

    Examples
    --------
    >>> num, suf = house_number_key(pd.Series(["100", "2", "12A", "12-14", "10", "", "12 1/2"]))
    >>> num.tolist()
    [100.0, 2.0, 12.0, 12.0, 10.0, inf, 12.0]
    >>> suf.tolist()
    ['', '', 'A', '-14', '', '', '1/2']
    """
    s = values.astype(str).fillna("").str.strip().str.upper()
    num = pd.to_numeric(s.str.extract(_NUM, expand=False), errors="coerce").to_numpy(dtype=float, na_value=np.inf)
    suffix = s.str.replace(_NUM, "", regex=True).str.strip()
    return num, suffix


def natural_key(values: pd.Series) -> tuple[FloatArray, pd.Series]:
    """Key for units: ``"2" < "10"``, ``"3R"`` after ``"3"``, letters after numbers, empty first."""
    s = values.astype(str).fillna("").str.strip().str.upper()
    num = pd.to_numeric(s.str.extract(r"(\d+)", expand=False), errors="coerce").to_numpy(dtype=float, na_value=np.inf)
    num = np.where(s.to_numpy(dtype=object) == "", -1.0, num)
    return num, s


def street_order(doors: pd.DataFrame, *, both_sides: bool = False, group: npt.ArrayLike | None = None) -> IntArray:
    """Positions of ``doors`` in street-sorted walking order.

    Streets alphabetically; on each street the odd side up (house numbers rising) and the even side back down,
    or, with ``both_sides``, both sides together by rising number (zig-zag on quiet streets); apartments grouped
    by building, then by unit (numerically). With ``group`` (a turf code per door), doors are sorted by group
    first, so one call orders every turf.

    Examples
    --------
    >>> d = pd.DataFrame({"street": ["MAIN ST"] * 4, "house_number": ["10", "3", "2", "1"],
    ...                   "building_id": list("abcd"), "unit": [""] * 4})
    >>> street_order(d).tolist()  # 1, 3 up the odd side, then 10, 2 back down the even side
    [3, 1, 0, 2]
    >>> street_order(d, both_sides=True).tolist()
    [3, 2, 1, 0]
    """
    num, suf = house_number_key(doors["house_number"])
    unum, utext = natural_key(doors["unit"])
    street = doors["street"].astype(str).fillna("").str.upper().to_numpy(dtype=object)
    finite = np.isfinite(num)
    odd = np.where(finite, np.mod(np.where(finite, num, 0), 2) == 1, True)
    side = np.zeros(len(doors), dtype=np.int64) if both_sides else np.where(odd, 0, 1)
    signed = np.where(finite, num, 1e12)
    signed = signed if both_sides else np.where(side == 1, -signed, signed)
    suffix = suf.rank(method="dense").to_numpy(dtype=float)
    suffix = suffix if both_sides else np.where(side == 1, -suffix, suffix)
    keys = {"g": np.zeros(len(doors), dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64),
            "street": street, "side": side, "num": signed, "suf": suffix,
            "b": doors["building_id"].astype(str).to_numpy(dtype=object), "unum": unum,
            "utext": utext.to_numpy(dtype=object)}
    return _stable_order(keys)


def _stable_order(keys: dict[str, Any]) -> IntArray:
    """The stable ascending order of rows by the columns of ``keys`` in turn (numbers, or strings without missing
    values, in code point order): ``pd.DataFrame(keys).sort_values(list(keys), kind="stable")``'s, by Arrow's
    multi-key sort."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = {}
    for name, values in keys.items():
        v = np.asarray(values)
        if v.dtype == object:
            cols[name] = pa.array(v, type=pa.large_string())
        elif v.dtype.kind == "f":
            cols[name] = pa.array(v + 0.0)  # -0.0 sorts as 0.0, as in pandas
        else:
            cols[name] = pa.array(v)
    n = len(next(iter(cols.values()))) if cols else 0
    cols["__pos"] = pa.array(np.arange(n, dtype=np.int64))  # ties keep their order
    order = pc.sort_indices(pa.table(cols), sort_keys=[(c, "ascending") for c in cols])
    return order.to_numpy(zero_copy_only=False).astype(np.int64)


def path_length(x: FloatArray, y: FloatArray, order: IntArray | None = None) -> float:
    """Length in metres of the open path visiting the points in ``order`` (default: as given)."""
    if order is not None:
        x, y = x[order], y[order]
    if len(x) < 2:
        return 0.0
    return float(np.hypot(np.diff(x), np.diff(y)).sum())


def _two_opt(d: FloatArray, tour: IntArray, mask: npt.NDArray[np.bool_]) -> IntArray:
    m = len(tour)
    for _ in range(20 * m):
        a = tour
        b = np.roll(tour, -1)
        dab = d[a, b]
        delta = d[a[:, None], a[None, :]] + d[b[:, None], b[None, :]] - dab[:, None] - dab[None, :]
        delta[~mask] = 0.0
        flat = int(np.argmin(delta))
        if delta.flat[flat] > -1e-7:
            break
        i, j = divmod(flat, m)
        tour = np.concatenate([tour[: i + 1], tour[i + 1 : j + 1][::-1], tour[j + 1 :]])
    return tour


def _or_opt(d: FloatArray, tour: IntArray) -> tuple[IntArray, bool]:
    """Move one point to its best other position (one pass, best move)."""
    m = len(tour)
    prev = np.roll(tour, 1)
    nxt = np.roll(tour, -1)
    gain = d[prev, tour] + d[tour, nxt] - d[prev, nxt]  # removing point i
    a = tour
    b = np.roll(tour, -1)
    # insert point i between a[k] and b[k]
    cost = d[a[None, :], tour[:, None]] + d[tour[:, None], b[None, :]] - d[a, b][None, :]
    idx = np.arange(m)
    cost[idx, idx] = np.inf
    cost[idx, (idx - 1) % m] = np.inf
    delta = cost - gain[:, None]
    flat = int(np.argmin(delta))
    if delta.flat[flat] > -1e-7:
        return tour, False
    i, k = divmod(flat, m)
    p, after = tour[i], tour[k]
    rest = np.delete(tour, i)
    pos = int(np.flatnonzero(rest == after)[0])
    return np.insert(rest, pos + 1, p), True


def _closed(d: FloatArray) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    # a dummy node at distance 0 from everyone turns the open path into a closed tour
    n = len(d)
    dd = np.zeros((n + 1, n + 1))
    dd[:n, :n] = d
    m = n + 1
    ii, jj = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    return dd, (jj > ii + 1) & ~((ii == 0) & (jj == m - 1))


def _improve(dd: FloatArray, mask: npt.NDArray[np.bool_], tour: IntArray) -> IntArray:
    for _ in range(4 * len(tour)):
        tour = _two_opt(dd, tour, mask)
        tour, moved = _or_opt(dd, tour)
        if not moved:
            break
    return tour


def _open(tour: IntArray, n: int, x: FloatArray, y: FloatArray) -> IntArray:
    k = int(np.flatnonzero(tour == n)[0])
    out = np.concatenate([tour[k + 1 :], tour[:k]])
    # deterministic direction: start from the west (then north) end
    if (x[out[-1]], -y[out[-1]]) < (x[out[0]], -y[out[0]]):
        out = out[::-1]
    return out.astype(np.int64)


def _solve(d: FloatArray, x: FloatArray, y: FloatArray, n_starts: int) -> tuple[IntArray, IntArray]:
    """Best closed tour (with the dummy node ``n``) over the starts, and the open path it gives."""
    n = len(x)
    dd, mask = _closed(d)
    starts = list(dict.fromkeys([int(np.argmin(x)), int(np.argmax(y)), int(np.argmax(x)), int(np.argmin(y))]))
    best: IntArray | None = None
    best_len = np.inf
    for s in starts[: max(1, n_starts)]:
        visited = np.zeros(n, dtype=bool)
        path = [s]
        visited[s] = True
        cur = s
        for _ in range(n - 1):
            row = np.where(visited, np.inf, d[cur])
            cur = int(np.argmin(row))
            visited[cur] = True
            path.append(cur)
        tour = _improve(dd, mask, np.asarray([n, *path], dtype=np.int64))
        length = float(dd[tour, np.roll(tour, -1)].sum())
        if length < best_len - 1e-9:
            best, best_len = tour, length
    assert best is not None
    return best, _open(best, n, x, y)


def route_order(
    x: FloatArray,
    y: FloatArray,
    side: IntArray | None = None,
    *,
    side_penalty_m: float = 15.0,
    max_side_cost: float = 0.05,
    n_starts: int = 2,
) -> IntArray:
    """A short open walking path through the points (nearest neighbour, then 2-opt and or-opt, vectorized).

    Parameters
    ----------
    x, y
        Coordinates in metres.
    side
        Integer street-side code per point; stepping between two sides costs ``side_penalty_m`` extra, so a
        side is walked in one go unless splitting it saves more than that.
    max_side_cost
        Keeping sides together may lengthen the walk by at most this share; otherwise the shortest path found
        without the penalty is returned.
    n_starts
        Nearest-neighbour starts tried (the extreme points west, north, east, south); the shortest is kept.

    Returns
    -------
    ndarray
        A permutation of ``range(len(x))``.

    Examples
    --------
    >>> route_order(np.array([0.0, 30.0, 10.0, 20.0]), np.zeros(4)).tolist()
    [0, 2, 3, 1]
    """
    n = len(x)
    if n <= 2:
        return np.arange(n, dtype=np.int64)
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    if side is None or side_penalty_m <= 0 or len(np.unique(side)) < 2:
        return _solve(d, x, y, n_starts)[1]
    tour, sided = _solve(d + side_penalty_m * (side[:, None] != side[None, :]), x, y, n_starts)
    # the same tour polished on true distances: the reference the side penalty may cost at most max_side_cost over
    dd, mask = _closed(d)
    plain = _open(_improve(dd, mask, tour), n, x, y)
    if path_length(x, y, sided) <= (1 + max_side_cost) * path_length(x, y, plain) + 1e-9:
        return sided
    return plain


def _improve_many(dd: FloatArray, mask: npt.NDArray[np.bool_], tours: IntArray) -> IntArray:
    """:func:`_improve` of many tours of one length ``m`` at once (``dd``: B x m x m, ``tours``: B x m).

    Every tour goes through exactly the moves :func:`_improve` makes on it (2-opt to the end, then one or-opt
    move, again until no move helps or the same iteration limits are reached): each step takes the best move of
    every tour still improving from the same matrices, in one array pass.
    """
    tours = tours.copy()
    nb, m = tours.shape
    idx = np.arange(m)
    nxt = (idx + 1) % m
    prv = (idx - 1) % m
    phase = np.zeros(nb, dtype=np.int8)  # 0: 2-opt, 1: or-opt, 2: done
    k2 = np.zeros(nb, dtype=np.int64)
    outer = np.zeros(nb, dtype=np.int64)
    flat_dd = dd.reshape(-1)
    # the 2-opt moves allowed by the mask, in row-major order (the first best one is the one np.argmin finds)
    pi, pj = np.nonzero(mask)
    pi1, pj1 = nxt[pi], nxt[pj]
    while True:
        two = np.flatnonzero(phase == 0)
        one = np.flatnonzero(phase == 1)
        if len(two) == 0 and len(one) == 0:
            break
        if len(two):
            spent = k2[two] >= 20 * m
            phase[two[spent]] = 1
            g = two[~spent]
            if len(g):
                a = tours[g]
                base = (g * (m * m))[:, None]
                am = a * m
                dab = flat_dd[base + am + a[:, nxt]]
                # delta of every allowed move: d[a_i, a_j] + d[b_i, b_j] - d[a_i, b_i] - d[a_j, b_j], b = next
                delta = (flat_dd[base + am[:, pi] + a[:, pj]] + flat_dd[base + am[:, pi1] + a[:, pj1]]
                         - dab[:, pi] - dab[:, pj])
                best = np.argmin(delta, axis=1)
                val = delta[np.arange(len(g)), best]
                move = ~(val > -1e-7)  # masked moves count as 0: a best move must beat them to be taken
                phase[g[~move]] = 1
                gm, bm = g[move], best[move]
                if len(gm):
                    i, j = pi[bm], pj[bm]
                    q = idx[None, :]
                    rev = (q > i[:, None]) & (q <= j[:, None])
                    src = np.where(rev, i[:, None] + 1 + j[:, None] - q, q)
                    tours[gm] = np.take_along_axis(tours[gm], src, axis=1)
                    k2[gm] += 1
        if len(one):
            g = one
            t = tours[g]
            p = flat_dd[(g * (m * m))[:, None, None] + (t * m)[:, :, None] + t[:, None, :]]
            gain = p[:, prv, idx] + p[:, idx, nxt] - p[:, prv, nxt]
            dab = p[:, idx, nxt]
            cost = p.transpose(0, 2, 1) + p[:, :, nxt] - dab[:, None, :]
            cost[:, idx, idx] = np.inf
            cost[:, idx, prv] = np.inf
            delta = cost - gain[:, :, None]
            flat = np.argmin(delta.reshape(len(g), m * m), axis=1)
            val = delta.reshape(len(g), m * m)[np.arange(len(g)), flat]
            move = ~(val > -1e-7)
            phase[g[~move]] = 2
            gm, fm = g[move], flat[move]
            if len(gm):
                i, k = np.divmod(fm, m)
                q = idx[None, :]
                ii, kk = i[:, None], k[:, None]
                later = kk > ii  # the point moves forward: the ones between shift back by one
                src = np.where(later & (q >= ii) & (q < kk), q + 1, q)
                src = np.where(later & (q == kk), ii, src)
                src = np.where(~later & (q >= kk + 2) & (q <= ii), q - 1, src)
                src = np.where(~later & (q == kk + 1), ii, src)
                tours[gm] = np.take_along_axis(tours[gm], src, axis=1)
                outer[gm] += 1
                again = outer[gm] < 4 * m
                phase[gm[again]] = 0
                k2[gm[again]] = 0
                phase[gm[~again]] = 2
    return tours


def _nearest_neighbour_many(d: FloatArray, start: IntArray) -> IntArray:
    """The nearest-neighbour path of :func:`_solve` for many point sets of one size (``d``: B x n x n)."""
    nb, n = d.shape[0], d.shape[1]
    rows = np.arange(nb)
    visited = np.zeros((nb, n), dtype=bool)
    path = np.empty((nb, n), dtype=np.int64)
    cur = start.astype(np.int64)
    path[:, 0] = cur
    visited[rows, cur] = True
    for step in range(1, n):
        row = np.where(visited, np.inf, d[rows, cur])
        cur = np.argmin(row, axis=1)
        visited[rows, cur] = True
        path[:, step] = cur
    return path


def route_orders(
    x: FloatArray,
    y: FloatArray,
    group: npt.ArrayLike,
    side: IntArray | None = None,
    *,
    side_penalty_m: float = 15.0,
    max_side_cost: float = 0.05,
    max_cells: int = 2_000_000,
) -> IntArray:
    """:func:`route_order` (one start, the westmost point) of every group of points at once.

    Groups of the same size are solved together: the distance matrices of a few hundred turfs are one array and
    every nearest-neighbour, 2-opt and or-opt step is one array operation for all of them, making exactly the
    moves :func:`route_order` makes on each (so the orders are the same).

    Parameters
    ----------
    x, y
        Coordinates in metres.
    group
        A group code per point (the turf); points of a group are ordered among themselves.
    side, side_penalty_m, max_side_cost
        As in :func:`route_order`.
    max_cells
        Largest number of distance-matrix cells solved in one array (memory).

    Returns
    -------
    ndarray
        For every point, its position (0-based) in its group's walking order.

    Examples
    --------
    >>> route_orders(np.array([0.0, 30.0, 10.0, 20.0, 5.0]), np.zeros(5), np.array([0, 0, 0, 0, 1])).tolist()
    [0, 3, 1, 2, 0]
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    g = np.asarray(group, dtype=np.int64)
    sd = np.zeros(len(x), dtype=np.int64) if side is None else np.asarray(side, dtype=np.int64)
    order = np.argsort(g, kind="stable")
    gs = g[order]
    starts = np.r_[0, np.flatnonzero(gs[1:] != gs[:-1]) + 1] if len(gs) else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, len(gs)])
    pos = np.zeros(len(x), dtype=np.int64)
    for size in np.unique(sizes).tolist():
        which = np.flatnonzero(sizes == size)
        members = order[starts[which][:, None] + np.arange(size)[None, :]]  # B x size, point indices
        if size <= 2:
            pos[members] = np.arange(size)[None, :]
            continue
        per = max(1, max_cells // ((size + 1) * (size + 1)))
        for c0 in range(0, len(which), per):
            pos_chunk = _route_chunk(x[members[c0:c0 + per]], y[members[c0:c0 + per]], sd[members[c0:c0 + per]],
                                     side_penalty_m, max_side_cost)
            pos[members[c0:c0 + per]] = pos_chunk
    return pos


def _route_chunk(x: FloatArray, y: FloatArray, side: IntArray, side_penalty_m: float,
                 max_side_cost: float) -> IntArray:
    """Walking positions for B point sets of n points each (B x n arrays)."""
    nb, n = x.shape
    d = np.hypot(x[:, :, None] - x[:, None, :], y[:, :, None] - y[:, None, :])
    if side_penalty_m > 0:
        sided = np.array([len(np.unique(s)) >= 2 for s in side], dtype=bool)
    else:
        sided = np.zeros(nb, dtype=bool)
    solve_d = d.copy()
    if sided.any():
        solve_d[sided] = d[sided] + side_penalty_m * (side[sided][:, :, None] != side[sided][:, None, :])
    path = _nearest_neighbour_many(solve_d, np.argmin(x, axis=1))
    m = n + 1
    dd = np.zeros((nb, m, m))
    dd[:, :n, :n] = solve_d
    _, mask = _closed(np.zeros((n, n)))
    tours = _improve_many(dd, mask, np.column_stack([np.full(nb, n, dtype=np.int64), path]))
    if sided.any():
        plain_dd = np.zeros((int(sided.sum()), m, m))
        plain_dd[:, :n, :n] = d[sided]
        plain_tours = _improve_many(plain_dd, mask, tours[sided])
    out = np.zeros((nb, n), dtype=np.int64)
    k = 0
    for b in range(nb):
        chosen = _open(tours[b], n, x[b], y[b])
        if sided[b]:
            plain = _open(plain_tours[k], n, x[b], y[b])
            k += 1
            if not path_length(x[b], y[b], chosen) <= (1 + max_side_cost) * path_length(x[b], y[b], plain) + 1e-9:
                chosen = plain
        out[b, chosen] = np.arange(n)
    return out
