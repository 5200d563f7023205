import { describe, expect, it } from "vitest";
import { accountErrorText, passwordProblem, usernameProblem } from "../../src/account";

describe("account rules", () => {
  it("usernames follow the server's rules", () => {
    for (const ok of ["abc", "Alice_B-2", "x".repeat(32)]) expect(usernameProblem(ok)).toBeNull();
    for (const bad of ["ab", "x".repeat(33), "has space", "émile", ""]) expect(usernameProblem(bad)).not.toBeNull();
    expect(usernameProblem("Guest-123")).toMatch(/guests/);
  });

  it("passwords have at least 8 characters", () => {
    expect(passwordProblem("12345678")).toBeNull();
    expect(passwordProblem("1234567")).not.toBeNull();
    expect(passwordProblem("ééééééé")).not.toBeNull();
    expect(passwordProblem("p".repeat(1025))).not.toBeNull();
  });

  it("refusals say why without telling whether a name exists", () => {
    expect(accountErrorText(401, "INVALID_CREDENTIALS", null)).toBe("Wrong username or password");
    expect(accountErrorText(409, "USERNAME_TAKEN", null)).toMatch(/taken/);
    expect(accountErrorText(429, "RATE_LIMITED", "42")).toMatch(/42 s/);
    expect(accountErrorText(503, "UNAVAILABLE", null)).toMatch(/unavailable/);
  });
});
