r"""The integration loop of :func:`densflow.flow` (:ref:`flows`): steps, step-size control, saving.

The flow :math:`\dot p = -M(p)\nabla F(p)` in the Wasserstein, Fisher–Rao or
Mahalanobis metric is integrated by implicit steps (:mod:`densflow.flows.schemes`),
each a proximal problem solved by Newton–Krylov in the potential variables
(:mod:`densflow.flows.step`). Errors are measured in the continuum units
:math:`\rho = Np` with the weighted RMS norm of :func:`scipy.integrate.solve_ivp`,

.. math::

    \lVert e\rVert = \Big(\frac1N\sum_s \Big(\frac{N e_s}{\text{atol} + \text{rtol}\,
    N\max(p_{k,s}, p_{k+1,s})}\Big)^2\Big)^{1/2},

a step is accepted when the estimated local error has norm at most 1, and the next
step is :math:`h\,\min(f_{\max}, \max(0.2, 0.9\,\lVert e\rVert^{-1/(r+1)}))` (:math:`r`
the scheme's order; :math:`f_{\max} = 2` for BDF2, whose variable-step form is
zero-stable for step ratios below :math:`1+\sqrt2`, 5 for Euler).
"""

import time

import numpy as np

from ..core.operators import LinearSolveError
from .proximal import make_proximal
from .result import FlowResult
from .schemes import bdf2_coefficients, estimate_factor, predictor
from .step import NUMERICAL_ERRORS, solve_step

__all__ = ["Integration", "MAX_CUTS", "ROUNDING"]

#: Step-size cuts (by 4) of a failed step before the run gives up.
MAX_CUTS = 8
#: Fixed steps: a residual (relative to the RMS of rho) this small is accepted when the
#: line search can no longer resolve a decrease of the step's objective (about the
#: square root of the machine epsilon: the objective changes by the residual squared).
ROUNDING = 1e-8


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


class Integration:
    """One integration: the step attempt and the loop (history of the last three steps, counters)."""

    def __init__(self, energy, grid, metric, scheme, mobility, adaptive, rtol, atol, settings):
        self.energy, self.grid, self.metric, self.scheme = energy, grid, metric, scheme
        self.mobility, self.adaptive, self.rtol, self.atol = mobility, adaptive, rtol, atol
        self.settings = settings
        self.N = grid.size

    # ------------------------------------------------------------------ one attempt
    def attempt(self, h, hist, est_prev):
        """Try a step of size ``h`` from the history ``hist`` (newest last)."""
        t_k, p_k, phi_k, _ = hist[-1]
        k = len(hist) - 1  # accepted steps known here (capped at 2)
        use_bdf2 = self.scheme == "bdf2" and k >= 1
        hs = [h] + [hist[i][0] - hist[i - 1][0] for i in range(len(hist) - 1, 0, -1)]
        if use_bdf2:
            wk, wkm1, tf, omega = bdf2_coefficients(h, hs[1])
            p_km1 = hist[-2][1]
            q = wk * p_k + wkm1 * p_km1
            tau = tf * h
            p_star = np.maximum(p_k + omega * (p_k - p_km1), 0.5 * p_k)
        else:
            q, tau, p_star = p_k, h, p_k
        prox = make_proximal(self.metric, self.grid, p_star, self.mobility)
        # predictor (for the error estimate) and warm start
        if k == 0:
            rate = prox.apply(hist[-1][3])  # K g_k at p_k
            p_pred = p_k - h * rate
            factor = estimate_factor("explicit", hs)
        else:
            m = 3 if use_bdf2 else 2
            pts = hist[-m:]
            p_pred = predictor([s[0] for s in pts], [s[1] for s in pts], t_k + h)
            factor = estimate_factor("bdf2" if use_bdf2 else "euler", hs[:m])
        if k >= 1:
            phi_guess = predictor([s[0] for s in hist[-2:]], [s[2] for s in hist[-2:]], t_k + h)
        else:
            phi_guess = phi_k
        if self.adaptive:
            scale = self.atol + self.rtol * self.N * p_k
            tol, accept = self.settings.tol, 0.5
        else:
            scale = 1.0
            rho_rms = _rms(self.N * p_k)
            # the first fixed step: a loose solve, then tightened to its own error estimate
            base = est_prev if est_prev is not None else 1e-2 * _rms(self.N * (p_pred - p_k))
            tol = max(self.settings.tol * base, 1e-12 * rho_rms)
            accept = max(10 * tol, ROUNDING * rho_rms)
        out = solve_step(self.energy, prox, q, tau, phi_guess, tol, scale, self.settings,
                         candidates=(phi_k, np.zeros_like(phi_k)), accept=accept)
        if not out.converged:
            return out, None, None
        if not self.adaptive and est_prev is None:
            tol2 = max(self.settings.tol * _rms(self.N * factor * (out.p - p_pred)), 1e-12 * rho_rms)
            if tol2 < tol:
                more = solve_step(self.energy, prox, q, tau, out.phi, tol2, scale, self.settings,
                                  accept=max(10 * tol2, ROUNDING * rho_rms))
                more.newton += out.newton
                more.cg += out.cg
                if not more.converged:
                    return more, None, None
                out = more
        err_vec = factor * (out.p - p_pred)
        if self.adaptive:
            w = self.atol + self.rtol * self.N * np.maximum(p_k, out.p)
            err = _rms(self.N * err_vec / w)
        else:
            err = _rms(self.N * err_vec)
        order = 2 if use_bdf2 else 1
        return out, err, order

    # ------------------------------------------------------------------ the loop
    def integrate(self, p0, t0, t_end, dt, save_times, frames, max_steps, on_step, start,
                  record=None):
        energy = self.energy
        st0 = energy.evaluate(p0)
        g0 = np.asarray(st0.gradient, dtype=float)
        phi0 = g0 - g0.mean()
        hist = [(t0, p0, phi0, g0)]
        step_times, energies = [t0], [float(st0.value)]
        steps, newtons, cgs, errors = [], [], [], []
        rejected = failed_attempts = newton_total = cg_total = 0
        targets = sorted(set(save_times) | {t_end})
        explicit_times = bool(save_times)
        if save_times and save_times[0] == t0 or not save_times:
            frames.add(0, t0, p0)
        if save_times and save_times[0] == t0:  # saved: else a first step landing on the
            save_times.pop(0)                   # next save time would skip it
        span = t_end - t0
        h = dt if dt is not None else self._initial_step(p0, g0, span)
        h_nominal = h
        t, k, est_prev = t0, 0, None
        message, converged, failed = "", False, False
        cuts = 0
        if record is not None:  # a recorded flow: start it, or continue from its checkpoint
            resumed = record.begin(p0, t0, float(st0.value), frames)
            if resumed is not None and resumed.result is not None:
                return resumed.result
            if resumed is not None:
                (hist, step_times, energies, steps, newtons, cgs, errors, rejected, failed_attempts,
                 newton_total, cg_total, h, h_nominal, t, k, est_prev, frames) = resumed.loop
                targets = [v for v in targets if v > t + 1e-12 * span]
                save_times = [v for v in save_times if v > t + 1e-12 * span]
        while True:
            while targets and targets[0] <= t + 1e-12 * span:
                targets.pop(0)
            if not targets:
                converged, message = True, f"reached t_end = {t_end:g} in {k} steps"
                break
            if k >= max_steps:
                message = f"stopped at max_steps = {max_steps} (t = {t:.6g} < t_end = {t_end:g})"
                break
            remaining = targets[0] - t
            h_try = min(h, remaining)
            if self.adaptive and h < remaining < 2 * h:
                h_try = 0.5 * remaining  # avoid a tiny step before the target
            if remaining - h_try <= 1e-12 * span:
                h_try = remaining
            try:
                out, err, order = self.attempt(h_try, hist, est_prev)
            except (LinearSolveError,) + NUMERICAL_ERRORS as exc:
                out, err = None, None
                fail_msg = f"{type(exc).__name__}: {exc}"
            else:
                fail_msg = out.message
            if out is not None:
                newton_total += out.newton
                cg_total += out.cg
            if err is None:  # Newton failed: cut the step
                failed_attempts += 1
                cuts += 1
                if cuts > MAX_CUTS:
                    failed = True
                    message = (f"numerical failure at t = {t:.6g} (step {k + 1}): {fail_msg}; "
                               f"still failing after {MAX_CUTS} step-size cuts to {h_try:.3g}")
                    break
                h = 0.25 * h_try
                continue
            if self.adaptive and err > 1.0:
                rejected += 1
                h = h_try * max(0.2, 0.9 * err ** (-1.0 / (order + 1)))
                continue
            # accept
            cuts = 0
            t = t + h_try if h_try != remaining else targets[0]
            k += 1
            p_new = out.p
            hist.append((t, p_new, out.phi, out.gradient))
            if len(hist) > 3:
                hist.pop(0)
            step_times.append(t)
            energies.append(out.value)
            steps.append(h_try)
            newtons.append(out.newton)
            cgs.append(out.cg)
            errors.append(err)
            est_prev = err if not self.adaptive else None
            if frames.wants(k) or (save_times and abs(t - save_times[0]) <= 1e-12 * span):
                frames.add(k, t, p_new)
            while save_times and save_times[0] <= t + 1e-12 * span:
                save_times.pop(0)
            if self.adaptive:
                grow = 2.0 if self.scheme == "bdf2" else 5.0
                factor = min(grow, max(0.2, 0.9 * (err if err > 0 else 1e-10) ** (-1.0 / (order + 1))))
                h_new = h_try * factor
                if h_try < h:  # shortened to land on a target: keep the longer step
                    h_new = min(max(h_new, h), grow * h_try)
                h = h_new
            else:
                h = min(h_nominal, 2.0 * h_try) if h_try < h_nominal else h_nominal
            if record is not None:
                record.accepted(t, out.value, h_try, out.newton, out.cg, err, dict(
                    k=k, t=t, h=h, h_nominal=h_nominal, est_prev=est_prev, rejected=rejected,
                    failed_attempts=failed_attempts, newton_total=newton_total,
                    cg_total=cg_total), hist, frames, time.perf_counter() - start)
            if on_step is not None and on_step(k, t, p_new, {"dt": h_try, "energy": out.value,
                                                            "newton": out.newton, "cg": out.cg,
                                                            "error": err}):
                message = f"stopped by on_step at step {k} (t = {t:.6g})"
                break
        p_last = hist[-1][1]
        if not explicit_times and (not frames.times or frames.times[-1] != t):
            frames.add(k, t, p_last)
        times, dens = frames.arrays(self.grid.shape)
        info = {"rejected": rejected, "failed_attempts": failed_attempts,
                "newton_total": newton_total, "cg_total": cg_total, "adaptive": self.adaptive,
                "rtol": self.rtol, "atol": self.atol, "dt": dt, "frames_thinned": frames.thinned}
        result = FlowResult(p=p_last.copy(), t=float(t), times=times, densities=dens,
                          step_times=np.array(step_times), energies=np.array(energies),
                          steps=np.array(steps), newton_iterations=np.array(newtons, dtype=int),
                          cg_iterations=np.array(cgs, dtype=int), errors=np.array(errors),
                          n_steps=k, converged=converged, failed=failed, message=message,
                          scheme=self.scheme, metric=self.metric,
                          wall_time=time.perf_counter() - start, info=info)
        if record is not None:
            record.finish(result)
        return result

    def _initial_step(self, p0, g0, span):
        """First adaptive step (as :func:`scipy.integrate.solve_ivp` chooses it, from the
        size of the density and of its rate)."""
        prox = make_proximal(self.metric, self.grid, p0, self.mobility)
        rate = self.N * prox.apply(g0)
        scale = self.atol + self.rtol * self.N * p0
        d0, d1 = _rms(self.N * p0 / scale), _rms(rate / scale)
        h = span * 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        return min(h, span)
