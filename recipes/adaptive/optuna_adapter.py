"""flow's Optuna adapter: Optuna behind flow's JSON-lines algorithm protocol.

flow starts this script once per adaptive loop, with the python of the step's
`algorithm.environment` (which must have `optuna` installed, e.g. recipes/environments/optuna.py),
and writes one JSON request per line on stdin; every request gets exactly one JSON reply line
on stdout. The protocol is documented in docs/adaptive.md:

  hello    {"op":"hello","protocol":1,"space":{...},"direction":"minimize","options":{"sampler":"tpe","seed":1}}
  ask      {"op":"ask","n":8,"first_trial":0}             -> {"ok":true,"trials":[{"params":{...}},...]}
  ask      {"op":"ask","n":8,"first_trial":0,"replay":[...]}   (resume: take these as the proposals)
  tell     {"op":"tell","trials":[{"trial":0,"state":"complete","loss":0.3,...}]}   -> {"ok":true}
  finished {"op":"finished"}                                -> {"ok":true,"finished":false}
  close    {"op":"close"}                                   (no reply; exit)

Resume: flow replays the committed history (asks with the parameter sets it committed, then
the tells) to a fresh process. The adapter re-asks the seeded sampler and checks that it
proposes exactly the committed sets; then the study (and the sampler's random state) is in
the state of an uninterrupted run, and later asks are the same as they would have been. If a
proposal differs (an unseeded sampler, another Optuna version), the adapter rebuilds the
study from the history instead (told trials added with `study.add_trial`, asked ones
enqueued), and says `"replay":"rebuilt"` in its replies from then on.
"""

import json
import math
import sys


def reply(obj):
    sys.stdout.write(json.dumps(obj, allow_nan=False) + "\n")
    sys.stdout.flush()


class Adapter:
    def __init__(self, hello):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.space = hello["space"]
        self.direction = hello.get("direction", "minimize")
        self.options = hello.get("options") or {}
        self.distributions = {name: self._distribution(d) for name, d in self.space.items()}
        self.trials = {}  # flow trial number -> optuna Trial (asked, not told)
        self.history = []  # (params, told result or None) in ask order, for a rebuild
        self.replay_mode = "exact"
        self.study = self._new_study()

    def _distribution(self, d):
        D = self.optuna.distributions
        kind = d["type"]
        if kind == "uniform":
            return D.FloatDistribution(d["low"], d["high"])
        if kind == "log_uniform":
            return D.FloatDistribution(d["low"], d["high"], log=True)
        if kind == "int":
            return D.IntDistribution(d["low"], d["high"])
        if kind == "categorical":
            return D.CategoricalDistribution(d["choices"])
        raise ValueError(f"unknown dimension type {kind!r}")

    def _sampler(self):
        name = self.options.get("sampler", "tpe")
        seed = self.options.get("seed")
        s = self.optuna.samplers
        if name == "tpe":
            return s.TPESampler(seed=seed)
        if name == "random":
            return s.RandomSampler(seed=seed)
        if name == "cmaes":
            return s.CmaEsSampler(seed=seed)
        raise ValueError(f"unknown sampler {name!r} (tpe, random, cmaes)")

    def _new_study(self):
        return self.optuna.create_study(direction=self.direction, sampler=self._sampler())

    def ask(self, msg):
        n = int(msg["n"])
        first = int(msg.get("first_trial", len(self.history)))
        replay = msg.get("replay")
        if first != len(self.history):
            raise ValueError(f"ask for trial {first}, but {len(self.history)} trials were asked before")
        out = []
        if replay is None:
            for i in range(n):
                t = self.study.ask(self.distributions)
                self.trials[first + i] = t
                self.history.append([dict(t.params), None])
                out.append({"params": dict(t.params)})
            return {"ok": True, "trials": out}
        for i, params in enumerate(replay):
            if self.replay_mode == "exact":
                t = self.study.ask(self.distributions)
                if not same(t.params, params):
                    self._rebuild(pending=params)
                    t = self.trials[first + i]
                else:
                    self.trials[first + i] = t
                    self.history.append([dict(params), None])
            else:
                self.study.enqueue_trial(params)
                t = self.study.ask(self.distributions)
                self.trials[first + i] = t
                self.history.append([dict(params), None])
            out.append({"params": dict(t.params)})
        return {"ok": True, "trials": out, "replay": self.replay_mode}

    def _rebuild(self, pending):
        """The sampler did not re-derive the committed sets: a new study from the history."""
        self.replay_mode = "rebuilt"
        self.study = self._new_study()
        self.trials = {}
        FrozenTrial = self.optuna.trial.create_trial
        State = self.optuna.trial.TrialState
        for number, (params, told) in enumerate(self.history):
            if told is None:
                self.study.enqueue_trial(params)
                self.trials[number] = self.study.ask(self.distributions)
            elif told["state"] == "complete":
                self.study.add_trial(FrozenTrial(params=params, distributions=self.distributions, value=told["loss"]))
            else:
                self.study.add_trial(FrozenTrial(params=params, distributions=self.distributions, state=State.FAIL))
        self.study.enqueue_trial(pending)
        self.trials[len(self.history)] = self.study.ask(self.distributions)
        self.history.append([dict(pending), None])

    def tell(self, msg):
        State = self.optuna.trial.TrialState
        for r in msg["trials"]:
            number = int(r["trial"])
            t = self.trials.pop(number, None)
            if t is None:
                raise ValueError(f"trial {number} was not asked, or was told already")
            if r["state"] == "complete":
                loss = float(r["loss"])
                if not math.isfinite(loss):
                    raise ValueError(f"trial {number}: loss {loss} is not finite")
                self.study.tell(t, loss)
            else:
                self.study.tell(t, state=State.FAIL)
            self.history[number][1] = r
        return {"ok": True}


def same(a, b):
    if set(a) != set(b):
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, float) or isinstance(y, float):
            if float(x) != float(y):
                return False
        elif x != y:
            return False
    return True


def main():
    adapter = None
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
            op = msg.get("op")
            if op == "close":
                return
            if op == "hello":
                adapter = Adapter(msg)
                name = "optuna-" + str(adapter.options.get("sampler", "tpe"))
                reply({"ok": True, "name": name, "optuna": adapter.optuna.__version__})
            elif adapter is None:
                reply({"ok": False, "error": "the first request must be hello"})
            elif op == "ask":
                reply(adapter.ask(msg))
            elif op == "tell":
                reply(adapter.tell(msg))
            elif op == "finished":
                reply({"ok": True, "finished": False})
            else:
                reply({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as e:  # the reply says what went wrong; flow stops the loop
            reply({"ok": False, "error": f"{type(e).__name__}: {e}"})


if __name__ == "__main__":
    main()
