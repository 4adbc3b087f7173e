/** Promise wrappers for Office.js's callback APIs, shared by the host glue. */

export function officeCall<T>(start: (callback: (result: Office.AsyncResult<T>) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    start((result) => {
      if (result.status === Office.AsyncResultStatus.Succeeded) resolve(result.value);
      else reject(new Error(result.error?.message || "Office could not complete the request"));
    });
  });
}

export function supports(set: string, version: string): boolean {
  try {
    return Office.context.requirements?.isSetSupported(set, version) === true;
  } catch {
    return false;
  }
}
