"""A small SIR model: daily new cases for `days` days, with Poisson noise from --seed, and
the loss against observed counts (mean squared error of log1p counts). Writes {"loss": ...}."""
import argparse, json, math, random

def simulate(beta, gamma, days=60, n=10000, i0=10):
    s, i, r = n - i0, i0, 0
    cases = []
    for _ in range(days):
        new_inf = beta * s * i / n
        new_rec = gamma * i
        s, i, r = s - new_inf, i + new_inf - new_rec, r + new_rec
        cases.append(new_inf)
    return cases

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--beta", type=float, required=True)
    p.add_argument("--gamma", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--observed", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    rng = random.Random(a.seed)
    observed = json.load(open(a.observed))
    sim = [max(0.0, c + rng.gauss(0, math.sqrt(c + 1))) for c in simulate(a.beta, a.gamma, len(observed))]
    loss = sum((math.log1p(x) - math.log1p(y)) ** 2 for x, y in zip(sim, observed)) / len(observed)
    with open(a.out, "w") as f:
        json.dump({"loss": loss, "peak_day": max(range(len(sim)), key=sim.__getitem__)}, f)

if __name__ == "__main__":
    main()
