// Bounds a shutdown step by a deadline: whatever the database or a receiver does, a stop ends
// in time. Work still running at the deadline carries on unawaited; the process exits anyway
// and at-least-once delivery sends again what was not recorded.

/**
 * Resolves true once `work` settles (fulfilled or rejected: report errors before passing it),
 * or false at `deadline` (a Date.now() value) if it has not.
 */
export async function settledBy(work: Promise<unknown> | undefined, deadline: number): Promise<boolean> {
  if (work === undefined) return true;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([work.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
