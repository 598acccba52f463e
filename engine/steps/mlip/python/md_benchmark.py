"""flow md-benchmark driver: the IPC overhead of running an ML potential out of process.

Runs the same NVE molecular dynamics (ASE VelocityVerlet on an fcc supercell, Maxwell-Boltzmann
start at T) twice per repeat: with the calculator in this process ("direct"), and with it in a
separate worker process of the same environment reached over the i-PI protocol on a Unix domain
socket (ASE's SocketIOCalculator / SocketClient). Only the MD loop is timed: the calculator's
set-up, the worker's start and a few warm-up steps happen before the clock starts.

Prints exactly one JSON object on the last line of stdout; everything else goes to stderr.
Shipped inside flow (flow-mlip) and written out at run time; run with the environment's python.
"""
import argparse
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

SCHEMA = "flow-md-benchmark/1"


def load_setup(path):
    spec = importlib.util.spec_from_file_location("flow_environment", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "setup"):
        raise SystemExit(f"{path}: defines no setup(model, device)")
    return module.setup


def supercell_shape(target_atoms):
    """Repetitions (a, b, c) of the 4-atom cubic fcc cell giving close to target_atoms atoms,
    as cubic as possible among the closest."""
    cells = max(1, round(target_atoms / 4))
    edge = max(1, round(cells ** (1 / 3)))
    candidates = []
    for a in range(max(1, edge - 1), edge + 2):
        for b in range(a, edge + 3):
            for c in range(b, edge + 4):
                candidates.append((abs(4 * a * b * c - target_atoms), c - a, (a, b, c)))
    return min(candidates)[2]


def make_atoms(element, target_atoms):
    from ase.build import bulk

    return bulk(element, "fcc", cubic=True).repeat(supercell_shape(target_atoms))


def total_energy(atoms):
    return atoms.get_potential_energy() + atoms.get_kinetic_energy()


def run_md(base_atoms, calc, args, seed):
    """One timed MD run; returns (seconds, start total energy, end total energy)."""
    import numpy as np
    from ase import units
    from ase.md import velocitydistribution as vd
    from ase.md.verlet import VelocityVerlet

    atoms = base_atoms.copy()
    atoms.calc = calc
    rng = np.random.RandomState(seed)
    # ASE >= 3.29 names it thermalize_momenta (MaxwellBoltzmannDistribution is deprecated).
    thermalize = getattr(vd, "thermalize_momenta", None) or vd.MaxwellBoltzmannDistribution
    thermalize(atoms, temperature_K=args.temperature_k, rng=rng)
    vd.Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=args.timestep_fs * units.fs)
    # Untimed warm-up: the first force calls pay for set-up (the worker's start and model load,
    # lazy initialisation, autograd and CUDA warm-up), which is not what the gate measures.
    dyn.run(args.warmup_steps)
    e_start = total_energy(atoms)
    started = time.perf_counter()
    dyn.run(args.steps)
    seconds = time.perf_counter() - started
    return seconds, e_start, total_energy(atoms)


def worker(args):
    """The out-of-process calculator: answers i-PI requests on the Unix socket until EXIT."""
    from ase.calculators.socketio import SocketClient

    atoms = make_atoms(args.element, args.atoms)
    atoms.calc = load_setup(args.environment_file)(args.model, args.device)
    client = SocketClient(unixsocket=args.socket_name)
    client.run(atoms)


def launch_worker(args):
    def launch(atoms, properties=None, port=None, unixsocket=None):
        command = [
            sys.executable, os.path.abspath(__file__), "--worker",
            "--socket-name", unixsocket,
            "--environment-file", args.environment_file,
            "--model", args.model, "--device", args.device,
            "--element", args.element, "--atoms", str(args.atoms),
        ]
        # The worker's output must not mix with the JSON result on our stdout.
        return subprocess.Popen(command, stdout=sys.stderr)

    return launch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environment-file", required=True)
    parser.add_argument("--model", default="")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--element", default="Cu")
    parser.add_argument("--atoms", type=int, default=108)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--timestep-fs", type=float, default=1.0)
    parser.add_argument("--temperature-k", type=float, default=300.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--socket-name", default=None)
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()

    if args.worker:
        worker(args)
        return

    import ase
    from ase.calculators.socketio import SocketIOCalculator

    # A timeout (SIGTERM) unwinds normally, so the socket file is removed and the worker ends.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    base = make_atoms(args.element, args.atoms)
    setup_started = time.perf_counter()
    direct_calc = load_setup(args.environment_file)(args.model, args.device)
    setup_seconds = time.perf_counter() - setup_started
    socket_name = args.socket_name or f"flow-md-{os.getpid()}-{time.time_ns() % 10**9}"

    direct, ipc, drift_direct, drift_ipc, final = [], [], [], [], {}
    with SocketIOCalculator(unixsocket=socket_name, launch_client=launch_worker(args)) as ipc_calc:
        for repeat in range(args.repeats):
            seed = args.seed + repeat
            # Alternate the order so slow drifts of a shared node hit both modes alike.
            order = ("direct", "ipc") if repeat % 2 == 0 else ("ipc", "direct")
            for mode in order:
                calc = direct_calc if mode == "direct" else ipc_calc
                seconds, e0, e1 = run_md(base, calc, args, seed)
                (direct if mode == "direct" else ipc).append(seconds)
                (drift_direct if mode == "direct" else drift_ipc).append(abs(e1 - e0) / len(base))
                final[mode] = e1 / len(base)
            print(f"repeat {repeat + 1}/{args.repeats}: direct {direct[-1]:.3f} s, ipc {ipc[-1]:.3f} s",
                  file=sys.stderr, flush=True)

    result = {
        "schema": SCHEMA,
        "element": args.element,
        "atoms": len(base),
        "steps": args.steps,
        "warmup_steps": args.warmup_steps,
        "timestep_fs": args.timestep_fs,
        "temperature_K": args.temperature_k,
        "repeats": args.repeats,
        "model": args.model,
        "device": args.device,
        "calculator": type(direct_calc).__name__,
        "direct_s": direct,
        "ipc_s": ipc,
        "direct_median_s": statistics.median(direct),
        "ipc_median_s": statistics.median(ipc),
        "setup_s": setup_seconds,
        "energy_drift_direct_eV_per_atom": max(drift_direct),
        "energy_drift_ipc_eV_per_atom": max(drift_ipc),
        "final_total_energy_direct_eV_per_atom": final["direct"],
        "final_total_energy_ipc_eV_per_atom": final["ipc"],
        "python": platform.python_version(),
        "ase": ase.__version__,
        "host": platform.node(),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
