// pino logger: JSON by default, pretty on a terminal. Secrets are redacted by path.
import pino from "pino";

export type Logger = pino.Logger;

export function createLogger(level: string, pretty = process.stdout.isTTY === true): Logger {
  return pino({
    level,
    redact: {
      paths: ["secret", "*.secret", "auth", "*.auth", "headers.authorization", "*.headers.authorization", "password"],
      censor: "[redacted]",
    },
    ...(pretty ? { transport: { target: "pino-pretty", options: { colorize: true, destination: 2 } } } : {}),
  }, pretty ? undefined : pino.destination(2));
}
