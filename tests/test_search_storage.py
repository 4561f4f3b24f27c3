"""OptunaSearchCV on persistent storages: resuming from SQLite and journal files, and
one study shared by two worker processes on a throw-away PostgreSQL server, where a
worker killed mid-trial is also resumed (the SQLite and journal cases of that are in
``test_reliability_search.py``).

The PostgreSQL test starts its own cluster (``initdb``/``pg_ctl`` from Debian's
``postgresql`` package) in a temporary directory, listening on 127.0.0.1 only. It skips
when the server or the ``psycopg2`` driver is missing, unless the environment sets
``SKLEARN_RESNET_REQUIRE_POSTGRESQL=1`` (as the CI script does): then it fails.
"""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from test_reliability_search import INTERVAL, Worker, kill_and_resume

from sklearn_resnet import OptunaSearchCV
from sklearn_resnet.search_space import fingerprint
from sklearn_resnet.search_study import (
    CHOICES_ATTR,
    RECORD_ATTR,
    interrupted_record,
    objective_key,
    open_storage,
    scoring_key,
)

C_SPACE = {"logisticregression__C": FloatDistribution(1e-3, 1e2, log=True)}
REQUIRE_POSTGRESQL = os.environ.get("SKLEARN_RESNET_REQUIRE_POSTGRESQL") == "1"


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=200, n_features=6, class_sep=2.0, random_state=0)


def _logreg():
    return make_pipeline(StandardScaler(), LogisticRegression())


def _search(**kwargs):
    return OptunaSearchCV(_logreg(), C_SPACE, cv=2, **kwargs)


def _assert_same_rows(resumed, first, n):
    for key in ("split0_test_score", "split1_test_score", "mean_test_score", "mean_fit_time"):
        np.testing.assert_array_equal(resumed.cv_results_[key][:n], first.cv_results_[key])
    assert resumed.cv_results_["params"][:n] == first.cv_results_["params"]


@pytest.mark.parametrize(
    "url, reason",
    [
        ("bogus://x", "Can't load plugin"),
        ("sqlite:///{tmp}/missing/dir/x.db", "unable to open"),
        # Without its driver (or, with one, without a server on port 1).
        ("mysql://user@127.0.0.1:1/db", "(DB access module|Can't connect)"),
    ],
    ids=["unknown-dialect", "unreachable-file", "missing-driver"],
)
def test_a_storage_that_cannot_be_opened_is_refused_before_any_trial(tmp_path, data, url, reason):
    X, y = data
    search = _search(n_trials=2, storage=url.format(tmp=tmp_path))
    with pytest.raises(ValueError, match=rf"The 'storage' .* cannot be opened: .*{reason}"):
        search.fit(X, y)
    assert not hasattr(search, "cv_results_")


@pytest.mark.parametrize("race", ["table studies already exists", "database is locked"])
def test_sqlite_workers_that_lose_the_table_creation_race_retry(tmp_path, monkeypatch, race):
    # Two workers starting on one new SQLite file both create Optuna's tables; SQLite
    # tells the loser "table ... already exists" (or, while the other writes, "database
    # is locked"), which is a race, not a bad storage.
    from sqlalchemy.exc import OperationalError

    real, calls = optuna.storages.RDBStorage, []

    def loses_the_race_once(url, **kwargs):
        calls.append(url)
        if len(calls) == 1:
            raise OperationalError("CREATE TABLE studies", {}, Exception(race))
        return real(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", loses_the_race_once)
    url = f"sqlite:///{tmp_path}/race.db"
    assert isinstance(open_storage(url), real) and len(calls) == 2


def test_a_plain_optuna_study_with_its_own_cv_results_attribute_can_be_continued(data):
    # Another tool's trials may store their own "cv_results" (here a list of fold
    # scores); they count as trials without a record, not as a crash.
    X, y = data
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    distribution = FloatDistribution(1e-3, 1e3, log=True)
    trial = optuna.trial.create_trial(
        params={"logisticregression__C": 1.0},
        distributions={"logisticregression__C": distribution},
        value=0.9,
        user_attrs={RECORD_ATTR: [0.9, 0.9]},
    )
    study.add_trial(trial)
    search = _search(n_trials=2, storage=storage, study_name="s", load_if_exists=True)
    search.fit(X, y)
    assert search.trial_numbers_ == [1, 2]
    assert list(search.cv_results_["trial_number"]) == [1, 2]


def test_sqlite_resume_adds_exactly_the_new_trials(tmp_path, data):
    X, y = data
    url = f"sqlite:///{tmp_path / 'search.db'}"
    first = _search(n_trials=3, storage=url, study_name="s", random_state=0).fit(X, y)
    resumed = _search(
        n_trials=2, storage=url, study_name="s", load_if_exists=True, random_state=1
    ).fit(X, y)
    study = optuna.load_study(study_name="s", storage=url)
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert resumed.trial_numbers_ == [3, 4] and first.trial_numbers_ == [0, 1, 2]
    assert list(resumed.cv_results_["trial_number"]) == [0, 1, 2, 3, 4]
    _assert_same_rows(resumed, first, 3)
    assert resumed.best_score_ == np.max(resumed.cv_results_["mean_test_score"])

    # Without study_name, a fit starts a fresh study in the same storage.
    fresh = _search(n_trials=1, storage=url).fit(X, y)
    assert fresh.study_.study_name != "s" and len(fresh.cv_results_["params"]) == 1
    assert len(optuna.get_all_study_names(url)) == 2
    # The same name without load_if_exists is refused, and adds nothing.
    with pytest.raises(ValueError, match="load_if_exists=True"):
        _search(n_trials=1, storage=url, study_name="s").fit(X, y)
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 5


def test_journal_file_resume(tmp_path, data):
    X, y = data
    path = tmp_path / "search.jsonl"
    first = _search(n_trials=2, storage=path, study_name="j", random_state=0).fit(X, y)
    resumed = _search(n_trials=1, storage=str(path), study_name="j", load_if_exists=True)
    resumed.fit(X, y)
    assert list(resumed.cv_results_["trial_number"]) == [0, 1, 2]
    _assert_same_rows(resumed, first, 2)
    assert isinstance(resumed.study_._storage, optuna.storages.JournalStorage)


# ---- PostgreSQL: one study, two worker processes ------------------------------------------
WORKER = """
import json, sys
from optuna.distributions import FloatDistribution
from sklearn.datasets import make_classification
from sklearn_resnet import OptunaSearchCV, ResNetClassifier

url, name, n_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
X, y = make_classification(n_samples=200, n_features=6, class_sep=2.0, random_state=0)
net = ResNetClassifier(depth=4, width=16, max_epochs=3, early_stopping=True,
                       validation_fraction=0.25, random_state=0, device="cpu")
search = OptunaSearchCV(net, {"lr": FloatDistribution(1e-3, 1e-1, log=True)},
                        n_trials=n_trials, cv=2, storage=url, study_name=name,
                        load_if_exists=True)
search.fit(X, y)
rows = [int(n) for n in search.cv_results_["trial_number"]]
print(json.dumps({"mine": search.trial_numbers_, "rows": rows}))
"""


def _unavailable(reason):
    if REQUIRE_POSTGRESQL:
        pytest.fail(reason)
    pytest.skip(reason)


def _postgres_bindir():
    on_path = shutil.which("initdb")
    candidates = [os.path.dirname(on_path)] if on_path else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for directory in candidates:
        tools = [os.path.join(directory, tool) for tool in ("initdb", "pg_ctl")]
        if all(os.access(tool, os.X_OK) for tool in tools):
            return directory
    return None


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgresql_url():
    """A throw-away PostgreSQL cluster on 127.0.0.1; yields a SQLAlchemy URL."""
    bindir = _postgres_bindir()
    if bindir is None:
        _unavailable("PostgreSQL server not found (initdb, pg_ctl); apt-get install postgresql")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        _unavailable("the psycopg2 driver is missing; pip install psycopg2-binary")
    run_as = []
    root = tempfile.mkdtemp(prefix="sklearn-resnet-pg-")
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as another user
        import pwd

        user = next((u for u in ("postgres", "nobody") if _has_user(pwd, u)), None)
        if user is None:
            _unavailable("running as root without a 'postgres' or 'nobody' user for the server")
        os.chown(root, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
        run_as = ["runuser", "-u", user, "--"]
    data_dir, port = os.path.join(root, "data"), _free_port()
    pg_ctl = [*run_as, os.path.join(bindir, "pg_ctl"), "-D", data_dir]
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *run_as,
            os.path.join(bindir, "initdb"),
            "-D",
            data_dir,
            "-U",
            "search",
            "--no-sync",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        check=True,
        capture_output=True,
    )
    log = os.path.join(root, "server.log")
    subprocess.run(
        [*pg_ctl, "-o", options, "-l", log, "-w", "start"], check=True, capture_output=True
    )
    try:
        yield f"postgresql+psycopg2://search@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _has_user(pwd, name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_two_processes_share_one_postgresql_study(postgresql_url, data):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", WORKER, postgresql_url, "shared", "3"]
    workers = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )
        for _ in range(2)
    ]
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    mine = [set(report["mine"]) for report in reports]
    assert len(mine[0]) == len(mine[1]) == 3
    assert mine[0].isdisjoint(mine[1]) and mine[0] | mine[1] == set(range(6))
    for report in reports:
        assert len(report["rows"]) == len(set(report["rows"]))  # no row twice
        assert set(report["mine"]) <= set(report["rows"])

    study = optuna.load_study(study_name="shared", storage=postgresql_url)
    assert sorted(t.number for t in study.trials) == list(range(6))
    assert len({t._trial_id for t in study.trials}) == 6
    assert all(t.state.is_finished() and RECORD_ATTR in t.user_attrs for t in study.trials)

    # A later search on the study sees every trial once, and adds its own.
    X, y = data
    from sklearn_resnet import ResNetClassifier

    net = ResNetClassifier(
        depth=4,
        width=16,
        max_epochs=3,
        early_stopping=True,
        validation_fraction=0.25,
        random_state=0,
        device="cpu",
    )
    search = OptunaSearchCV(
        net,
        {"lr": FloatDistribution(1e-3, 1e-1, log=True)},
        n_trials=1,
        cv=2,
        storage=postgresql_url,
        study_name="shared",
        load_if_exists=True,
    ).fit(X, y)
    assert list(search.cv_results_["trial_number"]) == list(range(7))


def test_killed_postgresql_worker_loses_nothing(postgresql_url, tmp_path):
    """SIGKILL mid-trial: the resumed search marks the dead trial FAIL, keeps the completed
    ones and adds exactly its own (checked by ``kill_and_resume``)."""
    worker = Worker(postgresql_url, "killed", str(tmp_path))
    try:
        search = kill_and_resume(worker)
    finally:
        worker.kill()
    assert search.study_._storage.get_heartbeat_interval() == INTERVAL


# ---- what a resumed study must match ------------------------------------------------------
def test_a_resumed_search_with_a_changed_list_is_refused_before_any_trial(tmp_path, data):
    X, y = data
    url = f"sqlite:///{tmp_path / 'search.db'}"
    kwargs = {"storage": url, "study_name": "s", "load_if_exists": True, "n_trials": 2}
    OptunaSearchCV(_logreg(), {"logisticregression__C": [0.1, 1.0]}, cv=2, **kwargs).fit(X, y)
    changed = OptunaSearchCV(_logreg(), {"logisticregression__C": [1.0]}, cv=2, **kwargs)
    with pytest.raises(ValueError, match=r"param_distributions\['logisticregression__C'\]"):
        changed.fit(X, y)
    # Nothing was asked: no trial is left running for good.
    states = [t.state for t in optuna.load_study(study_name="s", storage=url).trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2


def test_a_resumed_search_with_reordered_estimators_is_refused(tmp_path, data):
    X, y = data
    path = tmp_path / "search.jsonl"
    kwargs = {"storage": path, "study_name": "s", "load_if_exists": True, "n_trials": 2, "cv": 2}
    models = [LogisticRegression(C=0.01), LogisticRegression(C=1.0)]
    space = {"logisticregression": models}
    first = OptunaSearchCV(_logreg(), space, random_state=0, **kwargs).fit(X, y)
    # The same list in the same order resumes; its old rows keep their estimators.
    same = [LogisticRegression(C=0.01), LogisticRegression(C=1.0)]
    resumed = OptunaSearchCV(_logreg(), {"logisticregression": same}, **kwargs).fit(X, y)
    old = [p["logisticregression"].C for p in resumed.cv_results_["params"][:2]]
    assert old == [p["logisticregression"].C for p in first.cv_results_["params"]]
    # Reordered, the stored positions would name the other estimator: refused.
    swapped = {"logisticregression": same[::-1]}
    with pytest.raises(ValueError, match="in another order"):
        OptunaSearchCV(_logreg(), swapped, **kwargs).fit(X, y)


def test_rows_scored_otherwise_are_left_out_of_a_resumed_search(tmp_path, data):
    X, y = data
    url = f"sqlite:///{tmp_path / 'search.db'}"
    kwargs = {"storage": url, "study_name": "s", "load_if_exists": True}
    _search(n_trials=2, random_state=0, **kwargs).fit(X, y)  # accuracy, the default
    # Trials whose worker died mid-trial, under the default scoring and two splits, and
    # under another scoring (as an earlier release, which let scorings share a study, left).
    study = optuna.load_study(study_name="s", storage=url)
    for scoring in (scoring_key(None), scoring_key("neg_log_loss")):
        dead = study.ask(C_SPACE)
        dead.set_user_attr(RECORD_ATTR, interrupted_record(2, ["score"], False, scoring))
        study.tell(dead, state=optuna.trial.TrialState.FAIL)

    # Another number of splits is another score for Optuna: refused before any trial.
    three_splits = _search(n_trials=1, **kwargs).set_params(cv=3)
    with pytest.raises(ValueError, match=r"Trial 0 .* on 2 cross-validation splits, and .* on 3"):
        three_splits.fit(X, y)
    same = _search(n_trials=1, **kwargs).fit(X, y)
    assert list(same.cv_results_["trial_number"]) == [0, 1, 2, 4]
    assert list(same.cv_results_["status"]) == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]


def test_a_resume_asking_for_train_scores_leaves_the_earlier_rows_nan_silently(tmp_path, data):
    X, y = data
    kwargs = {
        "storage": f"sqlite:///{tmp_path / 's.db'}",
        "study_name": "s",
        "load_if_exists": True,
    }
    _search(n_trials=2, **kwargs).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = _search(n_trials=1, return_train_score=True, **kwargs).fit(X, y)
    train = resumed.cv_results_["mean_train_score"]
    assert np.isnan(train[:2]).all() and np.isfinite(train[2])
    assert np.isfinite(resumed.cv_results_["mean_test_score"]).all()


def test_a_resume_that_would_tell_optuna_another_score_is_refused(tmp_path, data):
    """Optuna's sampler and best trial compare every completed trial's value, so one
    study holds one score: another scoring, or another metric of several for refit, is
    refused before any trial."""
    X, y = data
    url = f"sqlite:///{tmp_path / 'search.db'}"
    kwargs = {"storage": url, "study_name": "s", "load_if_exists": True, "n_trials": 1}
    metrics = ["accuracy", "neg_log_loss"]
    _search(scoring=metrics, refit="accuracy", **kwargs).fit(X, y)
    other_refit = _search(scoring=metrics, refit="neg_log_loss", **kwargs)
    with pytest.raises(ValueError, match=r"would optimise .*metric neg_log_loss.* optimised"):
        other_refit.fit(X, y)
    with pytest.raises(ValueError, match="Resume with the same scoring and refit"):
        _search(scoring="accuracy", **kwargs).fit(X, y)
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 1  # nothing asked
    # The same score resumes; another order of the list is the same score.
    resumed = _search(scoring=metrics[::-1], refit="accuracy", **kwargs).fit(X, y)
    assert list(resumed.cv_results_["trial_number"]) == [0, 1]
    # The trials of an earlier release carry no stamp: the study's record of the score
    # decides, or else the completed trials' scorings.
    legacy = _study_of_an_earlier_release(url, "legacy")
    kwargs["study_name"] = "legacy"
    with pytest.raises(ValueError, match="would optimise the estimator's own score method"):
        _search(**kwargs).fit(X, y)
    legacy.set_user_attr("sklearn_resnet:objective", objective_key(metrics, "accuracy"))
    with pytest.raises(
        ValueError, match=r"would optimise scoring=accuracy in .*\(metric accuracy\)"
    ):
        _search(scoring="accuracy", **kwargs).fit(X, y)
    _search(scoring=metrics, refit="accuracy", **kwargs).fit(X, y)


def _study_of_an_earlier_release(url: str, name: str) -> optuna.Study:
    """A study with one completed trial recorded as an earlier release did: scored with
    accuracy, without a stamp."""
    study = optuna.create_study(storage=url, study_name=name, direction="maximize")
    record = interrupted_record(2, ["score"], False, scoring_key("accuracy"))
    study.add_trial(
        optuna.trial.create_trial(
            params={"logisticregression__C": 1.0},
            distributions=C_SPACE,
            value=0.9,
            user_attrs={RECORD_ATTR: {**record, "interrupted": False}},
        )
    )
    return study


def test_a_failed_trial_of_this_release_keeps_an_earlier_releases_score(tmp_path, data):
    """Failed trials hold nobody to their stamp, but the completed trials of an earlier
    release, which carry none, still hold the study to their scoring."""
    X, y = data
    url = f"sqlite:///{tmp_path / 'search.db'}"
    _study_of_an_earlier_release(url, "s")
    kwargs = {"storage": url, "study_name": "s", "load_if_exists": True, "n_trials": 1, "cv": 2}
    bad = make_pipeline(StandardScaler(), LogisticRegression(penalty="l1"))  # lbfgs: no l1
    with pytest.raises(ValueError, match="All the 1 trials"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        OptunaSearchCV(bad, C_SPACE, scoring="accuracy", **kwargs).fit(X, y)
    with pytest.raises(ValueError, match="would optimise scoring=neg_log_loss"):
        OptunaSearchCV(_logreg(), C_SPACE, scoring="neg_log_loss", **kwargs).fit(X, y)


@pytest.mark.parametrize("directions", [["minimize"], ["maximize", "maximize"]])
def test_a_stored_study_of_another_direction_is_refused(tmp_path, data, directions):
    url = f"sqlite:///{tmp_path / 'search.db'}"
    optuna.create_study(storage=url, study_name="s", directions=directions)
    search = _search(storage=url, study_name="s", load_if_exists=True, n_trials=1)
    with pytest.raises(ValueError, match=f"created to {' and '.join(directions)}"):
        search.fit(*data)
    assert not optuna.load_study(study_name="s", storage=url).trials


def test_a_resume_that_cannot_rebuild_values_recorded_by_position_is_refused(tmp_path, data):
    X, y = data
    url = f"sqlite:///{tmp_path / 'search.db'}"
    kwargs = {"storage": url, "study_name": "s", "load_if_exists": True, "n_trials": 2, "cv": 2}
    scalers = {"standardscaler": [StandardScaler(), MinMaxScaler()], **C_SPACE}
    OptunaSearchCV(_logreg(), scalers, **kwargs).fit(X, y)
    for space, wording in [
        (C_SPACE, "leaves out"),
        ({**C_SPACE, "standardscaler": [0, 1]}, "plain"),
    ]:
        with pytest.raises(ValueError, match=f"{wording}.*cannot be rebuilt"):
            OptunaSearchCV(_logreg(), space, **kwargs).fit(X, y)
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 2


def test_continuing_a_study_with_the_same_seed_draws_new_trials_repeatably(data, tmp_path):
    # Seeded as on the first run, TPE's random start drew the first run's points again.
    def run(path):
        settings = dict(storage=str(path), study_name="s", load_if_exists=True, random_state=0)
        OptunaSearchCV(_logreg(), C_SPACE, n_trials=3, cv=2, **settings).fit(*data)
        study = optuna.load_study(
            study_name="s",
            storage=optuna.storages.JournalStorage(
                optuna.storages.journal.JournalFileBackend(str(path))
            ),
        )
        return [t.params["logisticregression__C"] for t in study.trials]

    first = run(tmp_path / "a.log")
    shutil.copy(tmp_path / "a.log", tmp_path / "b.log")
    continued = run(tmp_path / "a.log")
    assert continued[:3] == first and len(set(continued)) == 6
    assert run(tmp_path / "b.log") == continued  # a continued search is repeatable
    assert len(set(run(tmp_path / "a.log"))) == 9  # and a third run draws new points again


def test_of_two_workers_starting_together_with_other_scorings_one_is_refused(
    tmp_path, data, monkeypatch
):
    """Both pass the check before their first trial; the check repeated once a worker's
    first trials carry its stamp refuses the one that checks last, before it scores."""
    from sklearn_resnet import search_run

    X, y = data
    url = f"sqlite:///{tmp_path / 'search.db'}"
    kwargs = {"storage": url, "study_name": "s", "load_if_exists": True, "n_trials": 2}
    started = search_run.SearchRun._continue_sampling

    def other_worker_starts_now(self, study):
        monkeypatch.setattr(search_run.SearchRun, "_continue_sampling", started)
        _search(scoring="neg_log_loss", **kwargs).fit(X, y)  # runs between check and ask
        started(self, study)

    monkeypatch.setattr(search_run.SearchRun, "_continue_sampling", other_worker_starts_now)
    late = _search(scoring="accuracy", **kwargs)
    refusal = "would optimise scoring=accuracy .*optimised scoring=neg_log_loss"
    with pytest.raises(ValueError, match=refusal):
        late.fit(X, y)
    assert not hasattr(late, "study_")
    trials = optuna.load_study(study_name="s", storage=url).trials
    scored = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [t.user_attrs[RECORD_ATTR]["scoring"] for t in scored] == ["neg_log_loss"] * 2
    # The refused worker's first trial failed without a score and counts for no later
    # check, nor as a row.
    (refused,) = [t for t in trials if t not in scored]
    assert refused.state == optuna.trial.TrialState.FAIL
    assert refused.user_attrs[RECORD_ATTR]["refused"]
    resumed = _search(scoring="neg_log_loss", **kwargs).fit(X, y)
    assert list(resumed.cv_results_["trial_number"]) == [0, 1, 3, 4]


def _two_metrics(estimator, X, y):
    """A callable scorer of two metrics."""
    return {"a": estimator.score(X, y), "b": 1.0 - estimator.score(X, y)}


def test_a_resume_that_would_optimise_another_metric_of_a_callable_scorer_is_refused(
    tmp_path, data
):
    X, y = data
    kwargs = {"storage": tmp_path / "search.jsonl", "study_name": "s", "load_if_exists": True}
    _search(scoring=_two_metrics, refit="a", n_trials=1, **kwargs).fit(X, y)
    with pytest.raises(ValueError, match=r"would optimise .*metric b"):
        _search(scoring=_two_metrics, refit="b", n_trials=1, **kwargs).fit(X, y)
    resumed = _search(scoring=_two_metrics, refit="a", n_trials=1, **kwargs).fit(X, y)
    assert list(resumed.cv_results_["trial_number"]) == [0, 1]


def test_a_resume_with_other_fixed_settings_is_refused_naming_them(tmp_path, data):
    """The best trial is refitted with the estimator's settings of now, so trials scored
    with other settings (or by another estimator) cannot join the study."""
    X, y = data
    url = f"sqlite:///{tmp_path / 'search.db'}"
    kwargs = {"storage": url, "study_name": "s", "load_if_exists": True, "n_trials": 1, "cv": 2}
    OptunaSearchCV(_logreg(), C_SPACE, **kwargs).fit(X, y)
    refusals = [
        (
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=50)),
            C_SPACE,
            r"logisticregression__max_iter was 100, it is 50 now",
        ),
        (
            make_pipeline(StandardScaler(with_mean=False), LogisticRegression()),
            C_SPACE,
            r"standardscaler__with_mean was True, it is False now",
        ),
        (
            make_pipeline(MinMaxScaler(), LogisticRegression()),
            C_SPACE,
            r"the estimator of now has no parameter standardscaler, standardscaler__copy, "
            r"standardscaler__with_mean and 1 more; the trial's estimator had no parameter "
            r"minmaxscaler, minmaxscaler__clip",
        ),
        (  # searched by the study's trials, fixed now: their refit would override it
            _logreg(),
            {"logisticregression__tol": [1e-4, 1e-3]},
            r"logisticregression__C was searched, it is fixed at 1.0 now",
        ),
        (  # three differences are all named; a fourth would be counted
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=50, tol=0.1, dual=True)),
            C_SPACE,
            r"dual was False, it is True now; .*max_iter was 100, it is 50 now; "
            r".*tol was 0.0001, it is 0.1 now\.",
        ),
        (
            make_pipeline(
                StandardScaler(),
                LogisticRegression(max_iter=50, tol=0.1, dual=True, intercept_scaling=2),
            ),
            C_SPACE,
            r"dual was False.*intercept_scaling was 1.*max_iter was 100, it is 50 now; 1 more\.",
        ),
    ]
    for estimator, space, wording in refusals:
        with pytest.raises(ValueError, match=f"Trial 0 .* other settings.*{wording}"):
            OptunaSearchCV(estimator, space, **kwargs).fit(X, y)
    bare = OptunaSearchCV(LogisticRegression(), {"C": C_SPACE["logisticregression__C"]}, **kwargs)
    with pytest.raises(
        ValueError,
        match=r"no parameter logisticregression, .*; .* had no parameter C, class_weight",
    ):
        bare.fit(X, y)
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 1  # nothing asked
    # Settings that do not change scores may differ; a parameter fixed at the same value
    # may join the search (the earlier trials are refitted with that value).
    quiet = make_pipeline(StandardScaler(), LogisticRegression(), memory=str(tmp_path / "cache"))
    OptunaSearchCV(quiet, C_SPACE, **kwargs).fit(X, y)
    wider = {**C_SPACE, "logisticregression__max_iter": [100, 200]}
    search = OptunaSearchCV(_logreg(), wider, **kwargs).fit(X, y)
    assert list(search.cv_results_["trial_number"]) == [0, 1, 2]


def test_plain_values_relisted_by_position_are_refused(tmp_path, data):
    X, y = data
    path = tmp_path / "search.jsonl"
    kwargs = {"storage": path, "study_name": "s", "load_if_exists": True, "n_trials": 2, "cv": 2}
    name = "logisticregression__random_state"
    OptunaSearchCV(_logreg(), {name: [0, 1]}, **kwargs).fit(X, y)
    # The same two choices to Optuna, positions 0 and 1, which would now mean other seeds.
    as_positions = {name: [np.random.RandomState(1), np.random.RandomState(0)]}
    with pytest.raises(ValueError, match=f"searched '{name}' over plain values"):
        OptunaSearchCV(_logreg(), as_positions, **kwargs).fit(X, y)


def test_a_resume_on_other_data_is_refused(tmp_path, data):
    X, y = data
    path = tmp_path / "search.jsonl"
    kwargs = {"storage": path, "study_name": "s", "load_if_exists": True, "n_trials": 1}
    _search(**kwargs).fit(X, y)
    weights = np.ones(len(y))
    others = [
        ((X[:150], y[:150]), {}, "150 now"),
        ((X, 1 - y), {}, "200 now"),
        ((X, y), {"sample_weight": weights}, "200 now"),
    ]
    for (X_other, y_other), params, wording in others:
        with pytest.raises(ValueError, match=f"scored on other data .*200 samples then, {wording}"):
            _search(**kwargs).fit(X_other, y_other, **params)
    resumed = _search(**kwargs).fit(X.copy(), list(y))  # equal values, other containers
    assert list(resumed.cv_results_["trial_number"]) == [0, 1]


def test_an_objective_recorded_by_another_tool_is_named_as_it_is(tmp_path, data):
    url = f"sqlite:///{tmp_path / 'search.db'}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    study.set_user_attr("sklearn_resnet:objective", "not json")
    with pytest.raises(ValueError, match="optimised the objective recorded as 'not json'"):
        _search(storage=url, study_name="s", load_if_exists=True, n_trials=1).fit(*data)


def test_a_refused_workers_trial_leaves_its_grid_point_to_the_others(tmp_path, data, monkeypatch):
    from sklearn_resnet import search_run

    X, y = data
    url = f"sqlite:///{tmp_path / 'search.db'}"
    grid = [0.01, 0.1, 1.0]

    def search(scoring, n_trials):
        sampler = optuna.samplers.GridSampler({"logisticregression__C": grid}, seed=0)
        space = {"logisticregression__C": grid}
        kwargs = {"storage": url, "study_name": "s", "load_if_exists": True, "cv": 2}
        return OptunaSearchCV(
            _logreg(), space, scoring=scoring, n_trials=n_trials, sampler=sampler, **kwargs
        )

    started = search_run.SearchRun._continue_sampling

    def other_worker_starts_now(self, study):
        monkeypatch.setattr(search_run.SearchRun, "_continue_sampling", started)
        search("neg_log_loss", 1).fit(X, y)
        started(self, study)

    monkeypatch.setattr(search_run.SearchRun, "_continue_sampling", other_worker_starts_now)
    with pytest.raises(ValueError, match="would optimise"):
        search("accuracy", 1).fit(X, y)
    # The refused trial took a grid point; the first worker's next two trials still
    # cover the whole grid.
    search("neg_log_loss", 2).fit(X, y)
    trials = optuna.load_study(study_name="s", storage=url).trials
    done = [t.params["logisticregression__C"] for t in trials if t.state.name == "COMPLETE"]
    assert sorted(done) == grid


def test_failed_trials_do_not_hold_a_study_to_their_settings(tmp_path, data):
    """A first run whose every fit failed (a bad fixed setting) or that was stopped in
    its first trial told Optuna no value: the corrected run may resume the study."""
    X, y = data
    url = f"sqlite:///{tmp_path / 'search.db'}"
    kwargs = {"storage": url, "study_name": "s", "load_if_exists": True, "n_trials": 1, "cv": 2}
    bad = make_pipeline(StandardScaler(), LogisticRegression(penalty="l1"))  # lbfgs: no l1
    with pytest.raises(ValueError, match="All the 1 trials"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        OptunaSearchCV(bad, C_SPACE, **kwargs).fit(X, y)
    search = OptunaSearchCV(_logreg(), C_SPACE, **kwargs).fit(X, y)
    # The failed trial's row is left out: its parameters would not rebuild its settings.
    assert list(search.cv_results_["trial_number"]) == [1]
    # A worker of other settings that is running now does hold it.
    study = optuna.load_study(study_name="s", storage=url)
    record = study.trials[-1].user_attrs[RECORD_ATTR]
    running = study.ask(C_SPACE)
    settings = {**record["settings"], "logisticregression__max_iter": "50"}
    running.set_user_attr(RECORD_ATTR, {**record, "settings": settings})
    with pytest.raises(ValueError, match=r"Trial 2 .* is being scored \(by another worker"):
        OptunaSearchCV(_logreg(), C_SPACE, heartbeat_interval=None, **kwargs).fit(X, y)


def test_settings_texts_do_not_depend_on_order_and_show_objects_parameters():
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.preprocessing import FunctionTransformer
    from skorch.callbacks import EarlyStopping, LRScheduler

    from sklearn_resnet import ResNetClassifier
    from sklearn_resnet.search_space import estimator_settings

    dropped = estimator_settings(FunctionTransformer(kw_args={"b": 2, "drop": {"zip", "age"}}))
    assert dropped["kw_args"] == "{'b': 2, 'drop': ['age', 'zip']}"
    reordered = estimator_settings(FunctionTransformer(kw_args={"drop": {"age", "zip"}, "b": 2}))
    assert reordered == dropped

    def callbacks(patience):
        clf = ResNetClassifier(callbacks=[("stop", EarlyStopping(patience=patience))])
        return estimator_settings(clf)["callbacks"]

    assert callbacks(5) == callbacks(5) != callbacks(50)
    # Sets are sorted (their order of iteration depends on the process); long texts are
    # kept as a digest.
    assert estimator_settings(FunctionTransformer(kw_args={"s": {8, 1}}))["kw_args"] == (
        "{'s': [1, 8]}"
    )
    long = estimator_settings(FunctionTransformer(kw_args={"x": "a" * 5000}))["kw_args"]
    assert long.startswith("sha1:") and len(long) < 100
    # A callback named like a parameter ("lr") is no step whose parameters are listed.
    scheduled = [
        estimator_settings(ResNetClassifier(callbacks=[("lr", LRScheduler(step_size=size))]))
        for size in (2, 50)
    ]
    assert scheduled[0]["callbacks"] != scheduled[1]["callbacks"]

    def selecting(dtype):
        return estimator_settings(
            make_column_transformer((StandardScaler(), make_column_selector(dtype_include=dtype)))
        )["transformers"]

    assert selecting(np.number) == selecting(np.number) != selecting(object)
    # A Pipeline's steps are their classes: their parameters are settings of their own.
    steps = estimator_settings(_logreg())["steps"]
    assert (
        steps == "[('standardscaler', StandardScaler), ('logisticregression', LogisticRegression)]"
    )
    assert "random_state" not in estimator_settings(ResNetClassifier(random_state=3))


def test_the_data_digest_counts_values_not_containers():
    import pandas as pd
    import scipy.sparse as sp

    from sklearn_resnet.search_study import data_digest

    X = np.random.default_rng(0).random((6, 3))
    y = np.array([0, 1, 0, 1, 0, 1])

    def digest(X, y, **params):
        return data_digest(X, y, params)["digest"]

    same = [
        (np.asfortranarray(X), list(y)),
        (np.hstack([X, X])[:, :3], y.astype(float)),
    ]
    assert all(digest(*pair) == digest(X, y) for pair in same)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    built = pd.DataFrame({"a": X[:, 0]}).assign(b=X[:, 1], c=X[:, 2])
    assert digest(frame, y) == digest(frame.set_index(pd.Index(range(6, 0, -1))), y)
    assert digest(frame, y) == digest(built, pd.Series(y))
    assert digest(frame, y) != digest(frame.rename(columns={"a": "z"}), y)
    assert digest(sp.csr_matrix(X), y) == digest(sp.csc_matrix(X), y)
    stored_zero = sp.csr_matrix(X)
    stored_zero.data[0] = 0.0
    assert digest(stored_zero, y) == digest(sp.csr_matrix(stored_zero.toarray()), y)
    labels = np.array(["a", "b"])[y]
    assert digest(X, labels) == digest(X, pd.Series(labels)) == digest(X, list(labels))
    assert digest(X, labels) == digest(X, pd.Series(labels, dtype="category"))
    weights = digest(X, y, sample_weight=[1.0] * 6)
    assert weights == digest(X, y, sample_weight=np.ones(6)) != digest(X, y)


def test_choices_by_position_count_with_the_parameters_their_text_hides(tmp_path):
    """A skorch callback's text is its class alone: a reordered list of two clip values
    would rebuild each earlier trial with the other's."""
    from skorch.callbacks import GradientNormClipping

    from sklearn_resnet import ResNetClassifier

    X, y = make_classification(n_samples=80, n_features=4, random_state=0)
    clips = [[GradientNormClipping(0.001)], [GradientNormClipping(100.0)]]
    net = ResNetClassifier(depth=4, width=8, max_epochs=1, device="cpu", random_state=0)
    kwargs = {"storage": tmp_path / "s.jsonl", "study_name": "s", "load_if_exists": True, "cv": 2}
    OptunaSearchCV(net, {"callbacks": clips}, n_trials=1, **kwargs).fit(X, y)
    with pytest.raises(ValueError, match="in another order"):
        OptunaSearchCV(net, {"callbacks": clips[::-1]}, n_trials=1, **kwargs).fit(X, y)


def test_a_resume_on_other_folds_of_the_same_data_is_refused(tmp_path, data):
    from sklearn.model_selection import KFold

    X, y = data
    kwargs = {"storage": tmp_path / "s.jsonl", "study_name": "s", "load_if_exists": True}
    seeded = KFold(2, shuffle=True, random_state=1)
    _search(n_trials=1, **kwargs).set_params(cv=seeded).fit(X, y)
    resumed = _search(n_trials=1, **kwargs).set_params(cv=seeded).fit(X, y)
    assert list(resumed.cv_results_["trial_number"]) == [0, 1]
    unseeded = _search(n_trials=1, **kwargs).set_params(cv=KFold(2, shuffle=True))
    with pytest.raises(ValueError, match=r"other cross-validation folds .* a fixed random_state"):
        unseeded.fit(X, y)


# ---- studies holding trials of earlier releases or of other tools -------------------------
def _copied_study(study, edit=lambda trial: trial):
    """A copy of ``study`` in memory (attributes and trials), each trial passed through
    ``edit`` first: trials as an earlier release or another tool left them."""
    storage = optuna.storages.InMemoryStorage()
    copy = optuna.create_study(storage=storage, study_name="s", direction=study.direction)
    for key, value in study.user_attrs.items():
        copy.set_user_attr(key, value)
    for trial in study.get_trials():
        copy.add_trial(edit(trial))
    return storage


def test_a_record_without_scoring_from_an_earlier_release_matches_any_scoring(data):
    X, y = data
    first = _search(n_trials=2, storage=optuna.storages.InMemoryStorage(), study_name="s")
    first.fit(X, y)

    def without_scoring(trial):
        record = dict(trial.user_attrs[RECORD_ATTR])
        del record["scoring"]
        trial.set_user_attr(RECORD_ATTR, record)
        return trial

    storage = _copied_study(first.study_, without_scoring)
    resumed = _search(n_trials=1, storage=storage, study_name="s", load_if_exists=True)
    resumed.fit(X, y)
    assert list(resumed.cv_results_["trial_number"]) == [0, 1, 2]
    _assert_same_rows(resumed, first, 2)


def _study_with_a_failed_trial(**trial):
    """An in-memory study "s" holding one failed trial of another tool."""
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, **trial))
    return storage


def test_a_failed_trial_of_another_tool_over_other_parameters_gets_no_row(data):
    X, y = data
    storage = _study_with_a_failed_trial(
        params={"other": 1}, distributions={"other": optuna.distributions.IntDistribution(0, 2)}
    )
    search = _search(n_trials=2, storage=storage, study_name="s", load_if_exists=True)
    search.fit(X, y)
    assert list(search.cv_results_["trial_number"]) == [1, 2]


def test_a_failed_trial_whose_cv_results_attribute_is_another_tools_dict_gets_a_nan_row(data):
    # A dict without "n_splits" is not a record of this search: the failed trial over the
    # search space is shown as failed, like one without the attribute.
    X, y = data
    storage = _study_with_a_failed_trial(
        params={"logisticregression__C": 1.0},
        distributions=C_SPACE,
        user_attrs={RECORD_ATTR: {"folds": [0.9, 0.8]}},
    )
    search = _search(n_trials=1, storage=storage, study_name="s", load_if_exists=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the failed trial's NaN scores
        search.fit(X, y)
    assert list(search.cv_results_["trial_number"]) == [0, 1]
    assert np.isnan(search.cv_results_["mean_test_score"][0])


def test_a_study_of_an_earlier_release_is_not_resumed_with_its_choices_reordered(data):
    # Earlier releases recorded the choices stored by position once, in the study.
    X, y = data
    scalers = [StandardScaler(), MinMaxScaler()]
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.set_user_attr(CHOICES_ATTR, {"standardscaler": [fingerprint(s) for s in scalers]})
    study.add_trial(
        optuna.trial.create_trial(
            params={"standardscaler": 0},
            distributions={"standardscaler": CategoricalDistribution([0, 1])},
            value=0.9,
        )
    )
    space = {"standardscaler": scalers[::-1]}
    search = OptunaSearchCV(
        _logreg(), space, n_trials=1, cv=2, storage=storage, study_name="s", load_if_exists=True
    )
    with pytest.raises(ValueError, match=r"lists other values, or the same in another order"):
        search.fit(X, y)
    assert len(study.trials) == 1
    OptunaSearchCV(
        _logreg(),
        {"standardscaler": scalers},
        n_trials=1,
        cv=2,
        storage=storage,
        study_name="s",
        load_if_exists=True,
    ).fit(X, y)  # the same list in the same order resumes
    assert len(study.trials) == 2
