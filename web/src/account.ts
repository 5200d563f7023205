// The account control: who is playing (a guest, or a name), the "Sign in /
// Register" dialog and "Sign out". Talks to /api/v1/auth/*; the rules and the
// error texts are pure functions, tested in tests/unit.

import { el } from "./ui";

/** The user of the session, as GET /api/v1/auth/me answers. */
export interface Me {
  userId: string;
  username: string;
  isGuest: boolean;
  isAdmin: boolean;
}

const USERNAME = /^[A-Za-z0-9_-]{3,32}$/;

/** Why a username cannot be registered, or null (the server's rules). */
export function usernameProblem(name: string): string | null {
  if (!USERNAME.test(name)) return "A username is 3 to 32 letters, digits, _ or -";
  if (name.toLowerCase().startsWith("guest-")) return "Names starting with guest- are kept for guests";
  return null;
}

/** Why a password cannot be used, or null. */
export function passwordProblem(password: string): string | null {
  if ([...password].length < 8) return "A password has at least 8 characters";
  if (new TextEncoder().encode(password).length > 1024) return "That password is too long";
  return null;
}

/** What to tell the player about a refused account request. */
export function accountErrorText(status: number, code: string | undefined, retryAfter: string | null): string {
  switch (code) {
    case "INVALID_CREDENTIALS":
      return "Wrong username or password";
    case "USERNAME_TAKEN":
      return "That username is taken";
    case "RATE_LIMITED":
      return `Too many attempts: try again in ${retryAfter ?? "a minute"} s`;
    case "FORBIDDEN":
      return "Refused: open place from its own address";
    default:
      return status >= 500 ? "The server is unavailable: try again" : `Refused (${status})`;
  }
}

/** The current session's user, or null without one. */
export async function fetchMe(): Promise<Me | null> {
  const res = await fetch("/api/v1/auth/me", { credentials: "same-origin" });
  return res.ok ? ((await res.json()) as Me) : null;
}

/** POSTs to /api/v1/auth/{what}: the user, or an Error with the text to show. */
async function post(what: "register" | "login" | "logout", body?: object): Promise<Me | null> {
  const res = await fetch(`/api/v1/auth/${what}`, {
    method: "POST",
    credentials: "same-origin",
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) {
    const code = await res
      .json()
      .then((b: { error?: { code?: string } }) => b.error?.code)
      .catch(() => undefined);
    throw new Error(accountErrorText(res.status, code, res.headers.get("retry-after")));
  }
  return res.status === 204 ? null : ((await res.json()) as Me);
}

/** The account pill in the top bar and its dialog. */
export class AccountPanel {
  private name = el("account-name");
  private button = el<HTMLButtonElement>("account-button");
  private dialog = el<HTMLDialogElement>("account-dialog");
  private form = el<HTMLFormElement>("account-form");
  private username = el<HTMLInputElement>("account-username");
  private password = el<HTMLInputElement>("account-password");
  private error = el("account-error");
  private me: Me | null = null;

  /**
   * `onChange` runs after a sign-in or sign-out: the session cookie is another one now.
   * `onMe` runs whenever the user shown changes (the admin panel follows it).
   */
  constructor(
    private onChange: () => void,
    private onMe: (me: Me | null) => void = () => {},
  ) {
    this.button.addEventListener("click", () => (this.signedIn ? void this.signOut() : this.open()));
    el("account-cancel").addEventListener("click", () => this.dialog.close());
    this.form.addEventListener("input", () => (this.error.hidden = true));
    // Enter submits the form, and that signs in: registering is only ever the Register button.
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.submit("login");
    });
    el("account-register").addEventListener("click", () => void this.submit("register"));
  }

  /** Who plays now, as the server last said (null before it answered). */
  get user(): Me | null {
    return this.me;
  }

  get signedIn(): boolean {
    return this.me !== null && !this.me.isGuest;
  }

  /** Asks the server who we are and shows it. */
  async refresh(): Promise<void> {
    try {
      this.show(await fetchMe());
    } catch {
      /* offline: the connection's status says so; try again on the next change */
    }
  }

  private show(me: Me | null): void {
    this.me = me;
    const named = this.signedIn && me !== null;
    this.name.hidden = !named;
    this.name.textContent = named ? me.username : "";
    this.name.title = named && me.isAdmin ? "administrator" : "";
    this.button.textContent = named ? "Sign out" : "Sign in / Register";
    this.onMe(me);
  }

  /** Opens the sign-in dialog. */
  open(): void {
    this.error.hidden = true;
    this.password.value = "";
    this.dialog.showModal();
    this.username.focus();
  }

  private async submit(action: "register" | "login"): Promise<void> {
    const username = this.username.value.trim();
    const password = this.password.value;
    const problem = action === "register" ? usernameProblem(username) ?? passwordProblem(password) : null;
    if (problem) return this.fail(problem);
    if (!username || !password) return this.fail("Enter a username and a password");
    try {
      this.show(await post(action, { username, password }));
      this.password.value = "";
      this.dialog.close();
      this.onChange();
    } catch (e) {
      this.fail((e as Error).message);
    }
  }

  private fail(message: string): void {
    this.error.textContent = message;
    this.error.hidden = false;
  }

  private async signOut(): Promise<void> {
    try {
      await post("logout");
    } catch {
      /* the session is gone either way once the socket reconnects */
    }
    this.show(null);
    this.onChange();
  }
}
