"""
Title: Multi-horizon forecasting with a global zoo GRU, against statistics' own methods
Description: Train, evaluate and export a forecaster with 80% prediction intervals.

Two data sets, both real and packaged (fetched at first use, sha256-checked):

* `--data m1`: the 181 yearly series of the M1 competition. One global model
  learns from every series at once; each history is scaled by its own last
  value inside the model (log(x / level)), so a series' size never matters.
  The last 6 years of each series are the test, as in the competition;
  the 6 years before them are the validation that picks the number of epochs.
  Then the model is refitted on everything before the test, and an ensemble
  of `--members` such networks (different seeds) is averaged.
* `--data seattle-weather`: Seattle's daily weather 2012-2015; the daily maximum
  temperature 7 days ahead from the last 56 days of all four variables.
  Train 2012-2013, validation 2014 (epochs), refit on 2012-2014, test 2015.
  The day of the year (sin, cos) is two more input columns.

Beside it, in the same run and on the same test points: naive, SES, Holt,
damped Holt and Theta (statsmodels), plus seasonal naive, climatology and an
ARIMA with Fourier terms for the weather. M1 is scored as the competitions
do (sMAPE, MASE, and the M4 OWA relative to Naive 2); the weather by MAE and
RMSE. The 0.1-0.9 quantiles form an 80% interval whose coverage the card
reports.

    python recipes/forecasting.py                          # the shipped forecasting-gru-m1
    python recipes/forecasting.py --data seattle-weather   # forecasting-gru-seattle-weather
    python recipes/forecasting.py --epochs 1 --members 1 --output-dir /tmp/hub   # smoke run
"""

import os
import time

from zoo.settings import choices, fraction, model_name, non_negative, positive, recipe_command, settings_parser

# -- settings (each overridable from the command line) ---------------------
DEFAULTS = dict(
    data="m1",             # m1 | seattle-weather
    cell="gru",            # recurrent cell: gru | lstm | rnn
    units=None,            # hidden units (default: 64 for m1, 16 for seattle-weather, chosen on validation)
    layers=1,              # stacked recurrent layers
    dropout=0.1,           # before the quantile head
    members=5,             # networks in the ensemble (seeds seed, seed+1, ...)
    epochs=60,             # maximum epochs of the selection run
    patience=8,            # epochs without val_loss improvement before stopping
    refit=True,            # after selection, retrain on train+validation for the chosen epochs
    batch_size=64,
    learning_rate=3e-3,
    clipnorm=1.0,          # global gradient-norm clipping
    seed=1337,             # seeds the initialization and the shuffling
    max_series=None,       # M1: keep the first N series only (smoke runs)
    heldout_every=1,       # M1: score the held-out yearly series from every Nth origin
    name=None,             # default forecasting-<cell>-<data>
    output_dir=None,       # hub directory; default saved_models/ (or $ZOO_MODELS_DIR)
    run_dir=None,          # checkpoints, logs, curves; default runs/<name>
)
CHECKS = dict(
    data=choices("m1", "seattle-weather"), cell=choices("gru", "lstm", "rnn"), units=positive,
    layers=positive, dropout=fraction, members=positive, epochs=positive, patience=non_negative,
    batch_size=positive, learning_rate=positive, clipnorm=positive, seed=non_negative, name=model_name,
    max_series=positive, heldout_every=positive,
)


def parse_args(argv=None):
    parser = settings_parser(DEFAULTS, __doc__, optional_types={"max_series": int, "units": int}, checks=CHECKS)
    args = parser.parse_args(argv)
    args.name = args.name or f"forecasting-{args.cell}-{args.data}"
    args.run_dir = args.run_dir or os.path.join("runs", args.name)
    return args


def compile_core(core, args):
    import keras

    from zoo.tasks import forecasting

    core.compile(optimizer=keras.optimizers.Adam(args.learning_rate, global_clipnorm=args.clipnorm),
                 loss=forecasting.pinball_loss())


def new_member(problem, args, strategy, seed):
    """A freshly initialised forecaster (seeded) and its compiled core."""
    from zoo import training
    from zoo.tasks import forecasting

    training.seed_everything(seed)
    with strategy.scope():
        model, core = forecasting.build_model(
            context=problem["context"], horizon=problem["horizon"], features=problem["features"],
            scaling=problem["scaling"], mean=problem.get("mean"), std=problem.get("std"),
            target_index=problem["target_index"], cell=args.cell, units=args.units,
            layers=args.layers, dropout=args.dropout, seed=seed)
        compile_core(core, args)
    return model, core


def train_member(member, problem, args, strategy):
    """Select the epochs on validation, then (with --refit) retrain on everything before the test."""
    from zoo import training
    from zoo.tasks import forecasting

    seed = args.seed + member
    model, core = new_member(problem, args, strategy, seed)

    def dataset(split, shuffle):
        histories, targets, _ = problem["splits"][split]
        inputs, scaled = forecasting.scale_for_training(model, histories, targets)
        return forecasting.as_dataset(inputs, scaled, args.batch_size, shuffle=shuffle, seed=seed)

    member_dir = os.path.join(args.run_dir, f"member-{member + 1}")
    selection = training.fit(core, dataset("selection_train", True), dataset("validation", False),
                             epochs=args.epochs, run_dir=os.path.join(member_dir, "selection"),
                             monitor="val_loss", patience=args.patience, verbose=0, tensorboard=False)
    summary = {"selection_epochs_run": selection["epochs_run"], "best_epoch": selection["best_epoch"],
               "best_val_loss": round(float(selection["best_value"]), 6),
               "seconds": selection["seconds"]}
    if args.refit:
        # the selected number of epochs, from a fresh start, on train + validation
        model, core = new_member(problem, args, strategy, seed)
        refit = training.fit(core, dataset("refit_train", True), None,
                             epochs=selection["best_epoch"] or 1, run_dir=os.path.join(member_dir, "refit"),
                             monitor="loss", patience=10 ** 6, verbose=0, tensorboard=False)
        summary["seconds"] += refit["seconds"]
    print(f"[zoo] member {member + 1}/{args.members}: best epoch {summary['best_epoch']} "
          f"(val pinball {summary['best_val_loss']:.4f}), {summary['seconds']:.0f} s")
    return model, summary


def main(argv=None):
    args = parse_args(argv)
    run_started = time.time()
    from zoo import hub, training
    from zoo.tasks import forecasting

    strategy = training.select_strategy("auto")

    # -- prepare the data ---------------------------------------------------
    problem = forecasting.load_problem(args.data, max_series=args.max_series)
    args.units = args.units or problem["units"]
    if problem["scaling"] == "standard":  # fixed feature scaling from the selection-train years
        problem.update(forecasting.standard_scaling(problem))
    print(f"[zoo] {args.data}: " + ", ".join(f"{k} {len(v[0])} windows" for k, v in problem["splits"].items()))

    # -- train the ensemble members -------------------------------------------
    members, summaries = [], []
    for member in range(args.members):
        model, summary = train_member(member, problem, args, strategy)
        members.append(model)
        summaries.append(summary)
    model = forecasting.ensemble_model(members)

    # -- evaluate: validation (for the record), the test once, the baselines ----
    # (after a refit the validation windows are training data: only the test is scored)
    metrics = forecasting.evaluate(model, problem, splits=("test",) if args.refit else ("validation", "test"))
    metrics["members_test"] = [forecasting.evaluate(m, problem, splits=("test",))["test"] for m in members]
    started = time.time()
    baselines = (forecasting.m1_baselines(problem) if args.data == "m1"
                 else forecasting.weather_baselines(problem))
    baseline_seconds = time.time() - started
    if args.data == "m1":
        naive2 = baselines["naive"]
        metrics["test"]["owa"] = round(forecasting.owa(metrics["test"]["smape"], metrics["test"]["mase"],
                                                       naive2["smape"], naive2["mase"]), 4)
        heldout = forecasting.heldout_yearly_evaluation(model, every=args.heldout_every)
        metrics["heldout_yearly"] = heldout
    comparison = forecasting.compare_with_baselines(metrics["test"], baselines, args.data)
    print(forecasting.format_table(metrics, baselines, args.data))
    print(f"[zoo] {forecasting.verdict(comparison)}")

    # -- export -----------------------------------------------------------------
    card = {
        "task": forecasting.TASK,
        "io": forecasting.IO_TYPE,
        "description": ("Yearly history of any positive series in, the next 6 years out (median "
                        "and 80% interval)." if args.data == "m1" else
                        "The last 56 days of Seattle weather (precipitation, max/min temperature, "
                        "wind, and the day of the year as sin/cos) in, the daily maximum temperature "
                        "of the next 7 days out (median and 80% interval)."),
        "architecture": (f"{forecasting.SCALING_TEXT[problem['scaling']]} → zoo.layers."
                         f"{args.cell.upper() if args.cell != 'rnn' else 'SimpleRNN'}({args.units})"
                         f"{' x' + str(args.layers) if args.layers > 1 else ''} → Dropout({args.dropout})"
                         f" → Dense({problem['horizon']}×3 quantiles, ordered) → unscaling; "
                         f"mean of {args.members} networks"),
        "parameters": int(model.count_params()),
        "inputs": f"history, float32 [batch, time, {problem['features']}] (a not-a-number value marks a missing one); "
                  f"the last {problem['context']} steps are used",
        "outputs": f"forecast (median), lower (0.1), upper (0.9): [batch, {problem['horizon']}]",
        "dataset": {"name": args.data, "description": problem["description"],
                    "horizon": problem["horizon"], "context": problem["context"],
                    "target_index": problem["target_index"], "max_series": args.max_series,
                    "features": problem["features"], "columns": problem["columns"],
                    "calendar": problem["calendar"],
                    "windows": {k: int(len(v[0])) for k, v in problem["splits"].items()},
                    "source": forecasting.SOURCES[args.data]},
        "metrics": metrics,
        "baselines": baselines,
        "baseline_descriptions": {k: forecasting.BASELINE_DESCRIPTIONS[k] for k in baselines},
        "comparison": comparison,
        "verdict": forecasting.verdict(comparison),
        "heldout_verdict": (None if args.data != "m1" else "On yearly series outside M1: " + forecasting.verdict(
            forecasting.compare_with_baselines(
                metrics["heldout_yearly"]["scores"]["zoo ensemble"],
                {k: v for k, v in metrics["heldout_yearly"]["scores"].items() if k != "zoo ensemble"}, "m1"))),
        "selection": "Epochs chosen per member on the validation windows (the horizon before the "
                     "test), from the training period only; settings were chosen on validation; "
                     "the test was scored once, at the end of the run.",
        "training": {
            "members": summaries,
            "seconds": round(sum(s["seconds"] for s in summaries), 1),
            "baseline_seconds": round(baseline_seconds, 1),
            "recipe_wall_seconds": round(time.time() - run_started, 1),  # data, training, evaluation
            "hardware": training.hardware_description(),
            "strategy": type(strategy).__name__,
            "settings": {k: getattr(args, k) for k in DEFAULTS if k not in ("output_dir", "run_dir")},
        },
        "command": recipe_command("recipes/forecasting.py", argv),
        "license": "Model: Apache-2.0 (this project). Data: " + forecasting.SOURCES[args.data]["license"],
        "created": time.strftime("%Y-%m-%d"),
    }
    path = hub.export_model(args.name, model, card, forecasting.write_serving, root=args.output_dir)
    training.clear_checkpoints(args.run_dir)  # published: a rerun trains afresh
    print(f"[zoo] wrote {path}")
    return card


if __name__ == "__main__":
    from zoo.training import main_guard

    main_guard(main)
