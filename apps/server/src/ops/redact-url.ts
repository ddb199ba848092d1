/** A store URL as it may appear in a log or an error: never its password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable)";
  }
}

/** Removes the URL's password from a message, should a client library ever quote it. */
export function scrubPassword(message: string, url: string): string {
  let password: string;
  try {
    password = decodeURIComponent(new URL(url).password);
  } catch {
    return message;
  }
  return password.length === 0 ? message : message.split(password).join("***");
}
