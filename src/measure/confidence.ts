// Confidence bounds on a rate measured as (failures, total): Wilson score, exact binomial while failures are few.

/**
 * The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9): the z of a
 * confidence level, without a dependency for one function.
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normalQuantile: p must be in (0, 1), got ${p}`);
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239,
  ];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1)
    );
  }
  if (p > 1 - low) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}

/** A rate with its one-sided bounds at a confidence level: each bound alone holds with that confidence. */
export interface RateEvidence {
  failures: number;
  total: number;
  /** failures ÷ total; null without requests. */
  value: number | null;
  lower: number;
  upper: number;
}

/**
 * Below this many failures (for the lower bound) or successes (for the upper), the bound is the exact
 * binomial (Clopper–Pearson) one: Wilson's normal approximation overstates the evidence of a handful
 * of failures (at 99 % it puts 1 failure in 3 at a rate of at least 4 %, the exact test at 0.34 %).
 * Above it, the two agree to well under a tenth of the rate, and Wilson costs nothing.
 */
export const EXACT_BELOW = 50;

/** P(X <= k) for X ~ Binomial(n, p), summed term by term (k small). */
function binomialCdf(k: number, n: number, p: number): number {
  if (p <= 0) return 1;
  if (p >= 1) return k >= n ? 1 : 0;
  let logTerm = n * Math.log1p(-p);
  const ratio = Math.log(p) - Math.log1p(-p);
  let sum = Math.exp(logTerm);
  for (let i = 0; i < k; i++) {
    logTerm += Math.log(n - i) - Math.log(i + 1) + ratio;
    sum += Math.exp(logTerm);
  }
  return Math.min(1, sum);
}

/** Bisection on a monotone function of p in [0, 1]: the p at which `f(p)` crosses `target`. */
function solve(f: (p: number) => number, target: number, increasing: boolean): number {
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    const above = f(mid) > target;
    if (above === increasing) hi = mid;
    else lo = mid;
  }
  return (lo + hi) / 2;
}

function wilson(failures: number, total: number, z: number): { lower: number; upper: number } {
  const p = failures / total;
  const z2 = z * z;
  const center = p + z2 / (2 * total);
  const spread = z * Math.sqrt((p * (1 - p)) / total + z2 / (4 * total * total));
  const scale = 1 + z2 / total;
  return { lower: Math.max(0, (center - spread) / scale), upper: Math.min(1, (center + spread) / scale) };
}

/**
 * One-sided bounds on the true rate behind `failures` of `total` at `confidence` (e.g. 0.99): the rate is
 * at least `lower` with that confidence, and at most `upper` with that confidence. One-sided because each
 * use asks one question ("is new's rate above the threshold?", "how high can legacy's be?").
 */
export function rateEvidence(failures: number, total: number, confidence: number): RateEvidence {
  if (total <= 0) return { failures: 0, total: 0, value: null, lower: 0, upper: 1 };
  const k = Math.min(Math.max(0, failures), total);
  const alpha = 1 - confidence;
  const z = normalQuantile(confidence);
  const approx = wilson(k, total, z);
  // Exact lower: the p at which P(X >= k) = alpha, i.e. P(X <= k-1) = 1 - alpha (decreasing in p).
  const lower =
    k === 0 ? 0 : k < EXACT_BELOW ? solve((p) => binomialCdf(k - 1, total, p), 1 - alpha, false) : approx.lower;
  // Exact upper: the p at which P(X <= k) = alpha (decreasing in p).
  const upper = k === total ? 1 : k < EXACT_BELOW ? solve((p) => binomialCdf(k, total, p), alpha, false) : approx.upper;
  return { failures: k, total, value: k / total, lower, upper };
}
