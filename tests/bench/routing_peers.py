"""PyVRP on one benchmark instance, for bench-routing's side-by-side.

usage: routing_peers.py INSTANCE solomon|vrplib SECONDS

Reads the instance itself (Solomon text or VRPLIB EUC_2D), builds the same problem as
`quartermaster route` solves (Solomon: DIMACS distances and travel times truncated to one
decimal, scaled by 10, fleet as in the file; VRPLIB: nearest-integer distances, as many
vehicles as customers), runs PyVRP for SECONDS with seed 0, and prints one line:
`distance D vehicles V feasible 0|1 cpu S` (D in the instance's units).
"""

import math
import resource
import sys

from pyvrp import Model
from pyvrp.stop import MaxRuntime


def solomon(path):
    rows, capacity, fleet = [], None, None
    lines = [line.split() for line in open(path)]
    for i, words in enumerate(lines):
        if words and words[0].upper() == "NUMBER":
            fleet, capacity = int(lines[i + 1][0]), int(lines[i + 1][1])
        if len(words) == 7 and all(w.lstrip("-").replace(".", "", 1).isdigit() for w in words):
            rows.append([float(w) for w in words])
    return rows, capacity, fleet


def vrplib(path):
    coords, demands, capacity, section = {}, {}, None, None
    for line in open(path):
        words = line.split()
        if not words or words[0] == "EOF":
            continue
        if ":" in line:
            key, value = line.split(":", 1)
            if key.strip() == "CAPACITY":
                capacity = int(value)
            section = None
            continue
        if words[0].endswith("_SECTION"):
            section = words[0]
            continue
        if section == "NODE_COORD_SECTION":
            coords[int(words[0])] = (float(words[1]), float(words[2]))
        elif section == "DEMAND_SECTION":
            demands[int(words[0])] = int(words[1])
    nodes = sorted(coords)
    rows = [[n - 1, *coords[n], demands[n], 0, 10**9, 0] for n in nodes]
    return rows, capacity, len(rows) - 1


def main():
    path, fmt, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rows, capacity, fleet = solomon(path) if fmt == "solomon" else vrplib(path)
    scale = 10 if fmt == "solomon" else 1

    def arc(a, b):
        d = math.hypot(a[1] - b[1], a[2] - b[2])
        return math.floor(d * 10 + 1e-9) if fmt == "solomon" else math.floor(d + 0.5)

    m = Model()
    depot = rows[0]
    places = [m.add_location(x=depot[1], y=depot[2])]
    home = m.add_depot(places[0], tw_early=int(depot[4]) * scale, tw_late=int(depot[5]) * scale)
    m.add_vehicle_type(
        num_available=fleet,
        capacity=capacity,
        start_depot=home,
        end_depot=home,
        tw_early=int(depot[4]) * scale,
        tw_late=int(depot[5]) * scale,
    )
    for r in rows[1:]:
        places.append(m.add_location(x=r[1], y=r[2]))
        m.add_client(
            places[-1],
            delivery=int(r[3]),
            service_duration=int(r[6]) * scale,
            tw_early=int(r[4]) * scale,
            tw_late=int(r[5]) * scale,
        )
    for i, a in enumerate(rows):
        for j, b in enumerate(rows):
            d = 0 if i == j else arc(a, b)
            m.add_edge(places[i], places[j], distance=d, duration=d)
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = m.solve(stop=MaxRuntime(seconds), seed=0, display=False)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    best = result.best
    print(f"distance {best.distance() / scale} vehicles {best.num_routes()} feasible {int(best.is_feasible())} cpu {cpu:.2f}")


if __name__ == "__main__":
    main()
