"""panininet/progress.py: the time left counts iterations and validations apart; the history survives a resume; the
plot is a PNG of every loss and metric."""
import builtins

import cv2
import pytest

from panininet.progress import TrainingProgress, format_seconds


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def run(progress, clock, iters, per_iter, val_every=None, val_seconds=0.0, start=1):
    for it in range(start, start + iters):
        progress.tick(it)
        clock.t += per_iter
        progress.record_losses(it, {'l_g_pix': 1.0 / it, 'out_d_real': -1.0, 'l_d_real': 0.5})
        if val_every and it % val_every == 0:
            clock.t += val_seconds
            progress.record_validation(it, 'val', {'psnr': 20.0 + it / 100}, val_seconds)


def test_time_left_counts_iterations_and_validations_apart():
    clock = Clock()
    p = TrainingProgress(total_iter=1000, val_freq=100, clock=clock)
    run(p, clock, 200, per_iter=0.5, val_every=100, val_seconds=30.0)
    p.tick(201)
    assert p.seconds_per_iter() == pytest.approx(0.5)  # the validations do not inflate it
    assert p.validations_left(200) == 8
    assert p.seconds_left(200) == pytest.approx(800 * 0.5 + 8 * 30.0)
    line = p.summary(200, 'x/progress.png')
    assert line.startswith('Progress: iter 200/1000 (20%), ') and 'about 10m40s left (0.50 s/iter; 8 validations of ' \
                                                                    '30.0 s to come); plot: x/progress.png' in line
    # BasicSR's mean would be (200 * 0.5 + 2 * 30) / 200 = 0.8 s/iter: 640 s, and nothing for what is to come
    assert TrainingProgress(10).seconds_left() is None  # nothing timed yet: no guess
    assert 'left' not in TrainingProgress(10).summary(0)


def test_history_survives_a_resume_and_drops_what_came_after_the_state():
    clock = Clock()
    p = TrainingProgress(total_iter=100, val_freq=20, clock=clock)
    run(p, clock, 40, per_iter=1.0, val_every=20, val_seconds=2.0)
    state = p.state_dict()
    run(p, clock, 10, per_iter=1.0, start=41)  # went on past the saved state, then stopped
    resumed = TrainingProgress(total_iter=100, val_freq=20, clock=clock)
    resumed.load_state_dict(state, resume_iter=40)
    assert [r[0] for r in resumed.losses['l_g_pix']] == list(range(1, 41))
    assert resumed.metrics == {'val/psnr': [[20, 20.2], [40, 20.4]]}
    assert 'out_d_real' not in resumed.losses  # only BasicSR's losses (l_*)
    assert resumed.spent_seconds() == pytest.approx(44.0)
    resumed.load_state_dict(None, 0)  # a state from before this module: nothing to continue
    assert resumed.metrics


def test_final_validation_past_the_end_counts_at_the_end():
    p = TrainingProgress(total_iter=100, val_freq=50)
    p.record_validation(102, 'val', {'psnr': 30.0}, 1.0)
    assert p.metrics['val/psnr'] == [[100, 30.0]]


def test_plot_is_written_and_needs_matplotlib(tmp_path, monkeypatch):
    clock = Clock()
    p = TrainingProgress(total_iter=100, val_freq=20, clock=clock)
    run(p, clock, 60, per_iter=0.1, val_every=20, val_seconds=1.0)
    path = tmp_path / 'models' / 'progress.png'
    assert p.plot(str(path), 'run: iter 60/100')
    img = cv2.imread(str(path))
    assert img is not None and img.shape[1] > img.shape[0] and img.std() > 5
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith('matplotlib'):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', no_matplotlib)
    assert p.plot(str(tmp_path / 'other.png')) is False and not (tmp_path / 'other.png').exists()


@pytest.mark.parametrize(('seconds', 'text'), [(4.2, '4s'), (75, '1m15s'), (3725, '1h02m'), (90000, '1d01h')])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
