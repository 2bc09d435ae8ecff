"""The entry points in experiments/ as a user meets them: errors a user fixes print as one message
without a traceback (exit status 1), unexpected errors keep theirs, no TPU probe line on CPU.

Every command fails before the training function is compiled; the ten commands run side by side
(one process each) from one module fixture: about 30 s of CPU for the whole file.
"""

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from subprocess_env import script_env

from vaex.experiment import WorkdirLock

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("VAEX_DATA_DIR", ROOT.parent / "shared" / "data"))
SMOKE = "--config=experiments/configs/smoke.py"
GAUSS = "--config=experiments/configs/gaussian_decoder_mnist5k.py"  # 5,000 rows: loads quickly.
TPU_LINE = "Unable to initialize backend 'tpu'"

sys.path.insert(0, str(ROOT / "experiments"))
import _entry  # noqa: E402


def _config_file(path: Path, body: str) -> str:
  path.write_text(textwrap.dedent(body))
  return f"--config={path}"


def _cases(tmp: Path) -> dict[str, list[str]]:
  """name -> command line (script and flags); every one fails before any compilation."""
  work = tmp / "work"
  bad_data = tmp / "bad_data"
  bad_data.mkdir()
  # A train split cut after 3 rows, the 4th of them half written.
  (bad_data / "binarized_mnist_train.amat").write_text(("0 1 " * 392).strip() + "\n" + "0 1 0\n")
  typo_key = _config_file(tmp / "typo_key.py", """
      from vaex import experiment
      def get_config():
        config = experiment.default_config()
        config.num_epoch = 3  # The typo validate_config refuses.
        return config
      """)
  broken = _config_file(tmp / "broken.py", """
      from vaex import experiment
      def get_config():
        config = experiment.default_config()
        return config.does_not_exist  # A bug in the config file: an AttributeError, not a typo flag.
      """)
  return {
      "override_typo": ["train.py", SMOKE, f"--workdir={work}", "--config.num_epoch=1"],
      "override_into_a_tuple": ["train.py", SMOKE, f"--workdir={work}", "--config.hidden_sizes.x=1"],
      "config_error": ["train.py", SMOKE, f"--workdir={work}", "--config.batch_size=0"],
      "unknown_key_in_file": ["train.py", typo_key, f"--workdir={work}"],
      "data_not_found": ["train.py", SMOKE, f"--workdir={work}", f"--config.data_dir={tmp / 'nowhere'}"],
      "data_format": ["train.py", SMOKE, f"--workdir={work}", f"--config.data_dir={bad_data}"],
      "workdir_in_use": ["train.py", GAUSS, f"--workdir={tmp / 'locked'}",
                         f"--config.data_dir={DATA_DIR}"],
      "no_checkpoint": ["evaluate.py", GAUSS, f"--workdir={tmp / 'empty'}",
                        f"--config.data_dir={DATA_DIR}"],
      "figure_script": ["figure5.py", f"--workdir={work}", f"--data_dir={tmp / 'nowhere'}",
                        "--latent_dims=2", "--epochs=1", "--num_train_examples=100"],
      "bug_in_config_file": ["train.py", broken, f"--workdir={work}"],
  }


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("cli")
  env = script_env()  # One CPU device, as a user's machine.
  env.pop("JAX_PLATFORMS", None)  # Let JAX probe for a TPU, as it does by default.
  lock = WorkdirLock(str(tmp / "locked")).acquire()  # Another run holds this workdir.
  try:
    processes = {
        name: subprocess.Popen([sys.executable, str(ROOT / "experiments" / script), *flags],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        for name, (script, *flags) in _cases(tmp).items()
    }
    out = {}
    for name, process in processes.items():
      stdout, stderr = process.communicate(timeout=300)
      out[name] = (process.returncode, stdout, stderr, tmp)
  finally:
    lock.release()
  return out


# name -> (script, the one message's start, strings it must contain, its number of lines)
ONE_MESSAGE = {
    "override_typo": ("train.py", "--config.num_epoch=1: config in experiments/configs/smoke.py has "
                      "no key 'num_epoch' (did you mean 'num_epochs'?)", ["default_config()"], 1),
    "override_into_a_tuple": ("train.py", "--config.hidden_sizes.x=1: config.hidden_sizes is a tuple",
                              ["no key 'x'"], 1),
    "config_error": ("train.py", "ConfigError: config.batch_size: must be an int >= 1; got 0.", [], 1),
    "unknown_key_in_file": ("train.py", "ConfigError: config.num_epoch", ["unknown key",
                                                                         "Check the spelling"], 1),
    "data_not_found": ("train.py", "DataNotFoundError: Could not find the 'train' split",
                       ["nowhere/binarized_mnist_train.amat", "To fix"], None),
    "data_format": ("train.py", "DataFormatError:", ["binarized_mnist_train.amat", "line 2",
                                                     "copy it again"], None),
    "workdir_in_use": ("train.py", "WorkdirInUseError:", [f"pid {os.getpid()}", "--workdir"], None),
    "no_checkpoint": ("evaluate.py", "CheckpointError: No checkpoint in", ["train first"], 1),
    "figure_script": ("figure5.py", "DataNotFoundError: Could not find the 'train' split", ["To fix"],
                      None),
}


@pytest.mark.parametrize("name", sorted(ONE_MESSAGE))
def test_a_user_error_is_one_message_without_a_traceback(results, name):
  returncode, _, stderr, tmp = results[name]
  script, start, contains, num_lines = ONE_MESSAGE[name]
  assert returncode == 1, stderr
  assert "Traceback" not in stderr and 'File "' not in stderr, stderr
  # Nothing else on stderr: no log line before the message, and in particular no TPU probe line.
  assert stderr.startswith(f"{script}: error: {start}"), stderr
  assert stderr.count(f"{script}: error:") == 1, stderr
  assert TPU_LINE not in stderr
  for text in contains:
    assert text in stderr, (text, stderr)
  if num_lines is not None:
    assert len(stderr.splitlines()) == num_lines, stderr


def test_the_messages_name_what_the_user_gave(results):
  stderr = results["workdir_in_use"][2]
  assert str(results["workdir_in_use"][3] / "locked") in stderr
  stderr = results["data_not_found"][2]
  assert str(results["data_not_found"][3] / "nowhere") in stderr


def test_an_unexpected_error_keeps_its_traceback(results):
  returncode, _, stderr, _ = results["bug_in_config_file"]
  assert returncode != 0
  assert "Traceback" in stderr and "does_not_exist" in stderr, stderr
  assert "error: --config" not in stderr  # Not mistaken for a mistyped --config.<key> flag.


def test_the_backend_was_probed_so_the_missing_tpu_line_means_something(results):
  """The data-not-found runs build the device mesh before loading data, so JAX had probed its
  backends; without the filter the same probe logs the TPU line on this machine."""
  code = ("import logging; logging.basicConfig(level=logging.INFO); import jax; jax.devices(); "
          "import jax._src.xla_bridge as xb; print('tpu' in xb._backend_errors)")
  env = script_env()  # One CPU device; JAX free to probe every platform it knows:
  env.pop("JAX_PLATFORMS", None)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
  if out.stdout.strip() != "True" or "libtpu.so" not in out.stderr:
    pytest.skip("this machine has a TPU runtime (libtpu) installed: no probe line to silence")
  assert TPU_LINE in out.stderr


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
  return logging.LogRecord("jax._src.xla_bridge", level, "xla_bridge.py", 1, message, None, None)


def test_the_tpu_filter_drops_only_a_missing_libtpu():
  keep = _entry._NoTpuProbe().filter
  assert not keep(_record("Unable to initialize backend 'tpu': INTERNAL: Failed to open libtpu.so: "
                          "libtpu.so: cannot open shared object file: No such file or directory"))
  # A TPU runtime that is installed but fails (a real TPU machine in trouble) is still reported.
  assert keep(_record("Unable to initialize backend 'tpu': ABORTED: The TPU is already in use by "
                      "process with pid 123."))
  assert keep(_record("Unable to initialize backend 'cuda': no GPU"))
  assert _entry._NoTpuProbe in {type(f) for f in logging.getLogger("jax._src.xla_bridge").filters}


@pytest.mark.parametrize(
    "flag, expected",
    [
        ("--config.num_epochs=3", None),
        ("--config.hidden_sizes=(8,)", None),
        ("--config.learning_rat=0.1", "no key 'learning_rat' (did you mean 'learning_rate'?)"),
        ("--config.zzz=1", "no key 'zzz'. Check the spelling"),
    ],
)
def test_unknown_override_message(flag, expected):
  message = _entry.unknown_override_message(["train.py", SMOKE.replace("=", f"={ROOT}/", 1), flag])
  if expected is None:
    assert message is None
  else:
    assert message.startswith(flag + ": config in ") and expected in message, message
