/** Follow Office's theme: Office tells the pane its colours (officeTheme); dark if the body is dark. */

export type ThemeChoice = "office" | "light" | "dark";

export function isDarkColor(color: string | undefined | null): boolean | undefined {
  const hex = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color?.trim() ?? "")?.[1];
  if (!hex) return undefined;
  const full = hex.length === 3 ? [...hex].map((c) => c + c).join("") : hex;
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16) / 255).map((c) =>
    c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4,
  );
  return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.2;
}

/** Office's body colour wins; outside Office (or on clients without officeTheme) the OS setting. */
export function wantsDark(choice: ThemeChoice, officeBackground: string | undefined, systemDark: boolean): boolean {
  if (choice !== "office") return choice === "dark";
  return isDarkColor(officeBackground) ?? systemDark;
}
