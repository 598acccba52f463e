#!/usr/bin/env python3
"""Write one plausible mock galaxy catalog as HDF5: the example generator of flow's
`mock-generation` step (one task = one realization at one redshift).

Layout of the file:
  galaxies/pos   (N, 3) float64  comoving positions in a periodic box, Mpc/h
  galaxies/mass  (N,)   float32  halo masses, Msun/h (log-normal, lighter at high redshift)
  galaxies/id    (N,)   int64    unique in a campaign: realization * 2**32 + index
  attributes on /: realization, redshift, redshift_label (the --z text as given), seed,
                   box_size, n_galaxies, generator

Everything random derives from --seed (flow passes a per-task u64 seed), so the same
arguments give byte-identical files. Without --rows the galaxy count is drawn from a
Poisson law whose mean falls with redshift. The file is written with the HDF5 1.10 format
(libver 'v110') so that readers built on older libraries (flow's, Debian's 1.10) open it.

flow runs this as the step's command with --out {{output}}: a temporary name that flow
validates and renames to the final name only once the file is complete.
"""

import argparse
import sys

import h5py
import numpy as np

BOX_SIZE_MPC_H = 1000.0
MEAN_GALAXIES_AT_Z0 = 20000
CLUSTERED_FRACTION = 0.3
HALO_RADIUS_MPC_H = 5.0
GENERATOR = "flow examples/mocks/generate_single_mock.py v1"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=int, required=True, help="realization number (>= 0)")
    parser.add_argument("--z", required=True, help="redshift, e.g. 1.000 (kept as written in redshift_label)")
    parser.add_argument("--seed", type=int, required=True, help="random seed, 0 <= seed < 2**64")
    parser.add_argument("--out", required=True, help="path of the HDF5 file to write")
    parser.add_argument("--rows", type=int, help="number of galaxies (default: Poisson draw)")
    args = parser.parse_args(argv)
    if args.real < 0 or args.real >= 2**31:
        parser.error(f"--real must be in [0, 2**31), got {args.real}")
    if not 0 <= args.seed < 2**64:
        parser.error(f"--seed must be in [0, 2**64), got {args.seed}")
    if args.rows is not None and args.rows < 0:
        parser.error(f"--rows must be >= 0, got {args.rows}")
    try:
        args.redshift = float(args.z)
    except ValueError:
        parser.error(f"--z must be a number, got {args.z!r}")
    if not np.isfinite(args.redshift) or args.redshift < 0:
        parser.error(f"--z must be a finite redshift >= 0, got {args.z!r}")
    return args


def galaxy_count(rng, redshift):
    """Poisson count whose mean falls with redshift (fewer bright objects far away)."""
    return int(rng.poisson(MEAN_GALAXIES_AT_Z0 * np.exp(-0.5 * redshift)))


def positions(rng, count):
    """A uniform background plus Gaussian clumps around halo centres, wrapped in the box."""
    clustered = int(CLUSTERED_FRACTION * count)
    background = rng.uniform(0.0, BOX_SIZE_MPC_H, size=(count - clustered, 3))
    centre_count = max(1, count // 200)
    centres = rng.uniform(0.0, BOX_SIZE_MPC_H, size=(centre_count, 3))
    members = centres[rng.integers(0, centre_count, size=clustered)]
    clumps = members + rng.normal(0.0, HALO_RADIUS_MPC_H, size=(clustered, 3))
    return np.mod(np.concatenate([background, clumps]), BOX_SIZE_MPC_H)


def masses(rng, count, redshift):
    """Log-normal halo masses whose typical value decreases with redshift."""
    log10_mass = rng.normal(12.0 - 0.25 * redshift, 0.45, size=count)
    return np.power(10.0, log10_mass).astype(np.float32)


def write_catalog(args):
    rng = np.random.default_rng(args.seed)
    count = args.rows if args.rows is not None else galaxy_count(rng, args.redshift)
    pos = positions(rng, count)
    mass = masses(rng, count, args.redshift)
    ids = np.int64(args.real) * np.int64(2**32) + np.arange(count, dtype=np.int64)

    with h5py.File(args.out, "w", libver=("earliest", "v110")) as catalog:
        galaxies = catalog.create_group("galaxies")
        dataset = galaxies.create_dataset("pos", data=pos, track_times=False)
        dataset.attrs["units"] = "Mpc/h"
        dataset = galaxies.create_dataset("mass", data=mass, track_times=False)
        dataset.attrs["units"] = "Msun/h"
        galaxies.create_dataset("id", data=ids, track_times=False)
        catalog.attrs["realization"] = np.int64(args.real)
        catalog.attrs["redshift"] = np.float64(args.redshift)
        catalog.attrs["redshift_label"] = args.z
        catalog.attrs["seed"] = np.uint64(args.seed)
        catalog.attrs["box_size"] = np.float64(BOX_SIZE_MPC_H)
        catalog.attrs["n_galaxies"] = np.int64(count)
        catalog.attrs["generator"] = GENERATOR
    return count


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    count = write_catalog(args)
    print(f"wrote {count} galaxies (realization {args.real}, z={args.z}, seed {args.seed}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
