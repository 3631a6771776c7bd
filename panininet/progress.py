"""Progress of a training run that people can read: the time left, and a plot of losses and validation metrics.

BasicSR's log lines stay as they are. Its ``eta`` is the mean time per iteration since the start times the
iterations left: it does not know about validations still to come before the first one has run, and afterwards it
spreads the ones past over every iteration. :class:`TrainingProgress` times the two apart (the median of recent
iterations, and the last validation) and says, at every validation and checkpoint::

    Progress: iter 100/200 (50%), 1m04s spent, about 1m12s left (0.62 s/iter; 2 validations of 2.3 s to come);
    plot: experiments/<name>/models/progress.png

With matplotlib (the ``[metrics]`` extra) ``progress.png`` next to the checkpoints shows every logged loss
(``l_*``) and every validation metric against the iteration; it is rewritten at each validation and checkpoint. The
history travels in the training state, so a resumed run continues the same curves.
"""
import time
from collections import deque


def format_seconds(seconds):
    """``3725`` -> ``'1h02m'``, ``75`` -> ``'1m15s'``, ``4.2`` -> ``'4s'``."""
    s = int(round(max(seconds, 0)))
    if s >= 86400:
        return f'{s // 86400}d{s % 86400 // 3600:02d}h'
    if s >= 3600:
        return f'{s // 3600}h{s % 3600 // 60:02d}m'
    if s >= 60:
        return f'{s // 60}m{s % 60:02d}s'
    return f'{s}s'


class TrainingProgress:
    """Loss and validation history of a run, its time left, and its plot.

    Args:
        total_iter (int): Last iteration of the run.
        val_freq (int | None): Iterations between validations (None: no validation).
        window (int): Iterations the time per iteration is the median of. Default: 50.
        clock (callable): Seconds now. Default: ``time.perf_counter``.
    """

    def __init__(self, total_iter, val_freq=None, window=50, clock=time.perf_counter):
        self.total_iter = int(total_iter)
        self.val_freq = int(val_freq) if val_freq else None
        self.clock = clock
        self.iter_seconds = deque(maxlen=window)
        self.losses = {}  # name -> [[iter, value], ...]
        self.metrics = {}  # 'dataset/metric' -> [[iter, value], ...]
        self.val_seconds = None
        self.spent = 0.0  # seconds of training before this process (resumed runs)
        self.started = clock()
        self.current_iter = 0
        self._last = None
        self._paused = 0.0

    # recording ---------------------------------------------------------------------------------------------------
    def tick(self, current_iter):
        """Called once per iteration, before its step: times the iteration before it (validation time excluded)."""
        now = self.clock()
        if self._last is not None and current_iter == self.current_iter + 1:
            self.iter_seconds.append(now - self._last - self._paused)
        self._last, self._paused = now, 0.0
        self.current_iter = current_iter

    def record_losses(self, current_iter, log):
        """Every number in ``log`` whose name starts with ``l_`` (BasicSR's losses) at ``current_iter``."""
        for name, value in log.items():
            if name.startswith('l_'):
                self.losses.setdefault(name, []).append([int(current_iter), float(value)])

    def record_validation(self, current_iter, dataset_name, results, seconds):
        """The metrics of one validation (``{'psnr': 23.1, ...}``) and how long it took (BasicSR's final
        validation, past ``total_iter``, counts as at ``total_iter``)."""
        current_iter = min(current_iter, self.total_iter)
        for name, value in (results or {}).items():
            self.metrics.setdefault(f'{dataset_name}/{name}', []).append([int(current_iter), float(value)])
        self.val_seconds = seconds
        self._paused += seconds

    # the estimate ------------------------------------------------------------------------------------------------
    def seconds_per_iter(self):
        """Median of the recent iterations' seconds, or None before two iterations have run."""
        if not self.iter_seconds:
            return None
        values = sorted(self.iter_seconds)
        return values[len(values) // 2]

    def seconds_left(self, current_iter=None):
        """Estimated seconds to the end: iterations left x :meth:`seconds_per_iter` + validations left x the last
        validation's time. None before an iteration has been timed."""
        current_iter = self.current_iter if current_iter is None else current_iter
        per_iter = self.seconds_per_iter()
        if per_iter is None:
            return None
        left = (self.total_iter - current_iter) * per_iter
        if self.val_freq and self.val_seconds is not None:
            left += self.validations_left(current_iter) * self.val_seconds
        return left

    def validations_left(self, current_iter):
        """Validations after ``current_iter`` (BasicSR validates at multiples of ``val_freq``, and at the end)."""
        if not self.val_freq:
            return 0
        n = self.total_iter // self.val_freq - current_iter // self.val_freq
        return n + (1 if self.total_iter % self.val_freq else 0)

    def spent_seconds(self):
        return self.spent + self.clock() - self.started

    def summary(self, current_iter, plot_path=None):
        """The one progress line (see the module docstring)."""
        pct = 100 * current_iter / max(self.total_iter, 1)
        spent = format_seconds(self.spent_seconds())
        text = f'Progress: iter {current_iter}/{self.total_iter} ({pct:.0f}%), {spent} spent'
        left = self.seconds_left(current_iter)
        if left is not None and current_iter < self.total_iter:
            text += f', about {format_seconds(left)} left ({self.seconds_per_iter():.2f} s/iter'
            n = self.validations_left(current_iter)
            if n and self.val_seconds is not None:
                text += f'; {n} validation{"s" if n > 1 else ""} of {self.val_seconds:.1f} s to come'
            text += ')'
        if plot_path:
            text += f'; plot: {plot_path}'
        return text

    # resume ------------------------------------------------------------------------------------------------------
    def state_dict(self):
        """Plain lists and numbers (loadable with ``weights_only``)."""
        return {'losses': self.losses, 'metrics': self.metrics, 'spent': self.spent_seconds(),
                'val_seconds': self.val_seconds}

    def load_state_dict(self, state, resume_iter):
        """Continue the history of ``state`` from iteration ``resume_iter`` (later entries, of a run that went on
        past its last saved state, are dropped)."""
        if not state:
            return
        def until_resume(history):
            return {k: [r for r in rows if r[0] <= resume_iter] for k, rows in history.items()}

        self.losses = until_resume(state.get('losses', {}))
        self.metrics = until_resume(state.get('metrics', {}))
        self.spent = float(state.get('spent', 0.0))
        self.val_seconds = state.get('val_seconds')
        self.started = self.clock()
        self.current_iter = resume_iter

    # the plot ----------------------------------------------------------------------------------------------------
    def plot(self, path, title=''):
        """Write the PNG of losses and validation metrics to ``path`` (atomically).

        Returns:
            bool: False when matplotlib is not installed (nothing written).
        """
        try:
            from matplotlib.figure import Figure
        except ImportError:
            return False
        from panininet.atomic import save_figure_atomic
        panels = [('losses', self.losses)] + [(name, {name: rows}) for name, rows in sorted(self.metrics.items())]
        cols = min(len(panels), 3)
        rows_n = (len(panels) + cols - 1) // cols
        fig = Figure(figsize=(4.2 * cols, 3.2 * rows_n), dpi=100)
        for i, (name, series) in enumerate(panels):
            ax = fig.add_subplot(rows_n, cols, i + 1)
            for label, rows in sorted(series.items()):
                if rows:
                    ax.plot([r[0] for r in rows], [r[1] for r in rows], label=label,
                            marker='o' if name != 'losses' else None, markersize=3)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel('iteration', fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if name == 'losses' and series:
                ax.legend(fontsize=7)
                positive = all(r[1] > 0 for rows in series.values() for r in rows)
                if positive and any(series.values()):
                    ax.set_yscale('log')
        if title:
            fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        save_figure_atomic(fig, path)
        return True
