// Shared by the scenario scripts: where the server is, what an image's header says, and one JSON line out.
//
// A script is `node <script>.mjs <scenario>` with PIXELGATE_URL (the server, no trailing /v1) and, for the
// scenarios that upload an image, PIXELGATE_INPUT_PNG (a PNG file's path). It prints one JSON object on
// stdout: the scenario's observations, or {"error": {...}} (and exits 1) when the client library threw.
import { readFileSync } from "node:fs";

export const FLASH = "gemini-3.1-flash-image"; // thinks hard only when asked: no interim images by default
export const PRO = "gemini-3-pro-image"; // always thinks: a draft and the final render as interim images

export function serverUrl() {
  const url = process.env.PIXELGATE_URL;
  if (!url) throw new Error("PIXELGATE_URL is not set");
  return url.replace(/\/+$/, "");
}

export function inputPng() {
  const path = process.env.PIXELGATE_INPUT_PNG;
  if (!path) throw new Error("PIXELGATE_INPUT_PNG is not set");
  return readFileSync(path);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

// The pixels a PNG declares, read from its IHDR chunk (bytes 16-23), as [width, height].
export function pngPixels(data) {
  const bytes = typeof data === "string" ? Buffer.from(data, "base64") : Buffer.from(data);
  if (bytes.length < 24 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) {
    throw new Error(`not a PNG (${bytes.length} bytes, starting ${bytes.subarray(0, 8).toString("hex")})`);
  }
  if (bytes.toString("latin1", 12, 16) !== "IHDR") throw new Error("a PNG whose first chunk is not IHDR");
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
}

export async function fetchPixels(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status} ${await response.text()}`);
  return pngPixels(new Uint8Array(await response.arrayBuffer()));
}

// A fetch that notes each request's method, path and body shape (JSON keys or multipart field names)
// before sending it unchanged: what the client library actually sent.
export function recordingFetch(requests) {
  return async (input, init = {}) => {
    const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
    const body = init.body;
    const seen = { method: init.method ?? "GET", path: url.pathname };
    if (body instanceof FormData) {
      seen.multipart = [...new Set(body.keys())];
    } else if (typeof body === "string") {
      try {
        seen.json = Object.keys(JSON.parse(body));
      } catch {
        seen.text = body.length;
      }
    }
    requests.push(seen);
    return fetch(input, init);
  };
}

function describe(error) {
  const out = { name: error?.name ?? typeof error, message: String(error?.message ?? error) };
  for (const key of ["status", "statusCode", "url", "responseBody", "code"]) {
    if (error?.[key] != null) out[key] = error[key];
  }
  if (error?.error != null) out.body = error.error; // openai-node's parsed error body
  if (error?.cause != null) out.cause = String(error.cause?.message ?? error.cause);
  return out;
}

// Runs the scenario named by argv[2] and prints its result (or the error it threw) as one JSON line.
export async function main(scenarios) {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) {
    console.log(JSON.stringify({ error: { name: "UsageError", message: `no scenario ${name}: use ${Object.keys(scenarios).join(", ")}` } }));
    process.exitCode = 2;
    return;
  }
  try {
    console.log(JSON.stringify(await scenario()));
  } catch (error) {
    console.log(JSON.stringify({ error: describe(error) }));
    process.exitCode = 1;
  }
}
