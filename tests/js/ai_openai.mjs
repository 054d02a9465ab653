// The Vercel AI SDK (`ai`) with its OpenAI provider (`@ai-sdk/openai`) against pixelgate's OpenAI Images API.
import { createOpenAI } from "@ai-sdk/openai";
import { generateImage } from "ai";

import { FLASH, inputPng, main, pngPixels, recordingFetch, serverUrl } from "./common.mjs";

const requests = [];
const openai = () => createOpenAI({ baseURL: `${serverUrl()}/v1`, apiKey: "unused", fetch: recordingFetch(requests) });

function describe(result) {
  return {
    images: result.images.map((image) => ({ mediaType: image.mediaType, pixels: pngPixels(image.uint8Array) })),
    warnings: result.warnings,
    sizes: (result.providerMetadata?.openai?.images ?? []).map((image) => image.size ?? null),
    requests,
  };
}

await main({
  // JSON to /images/generations with response_format b64_json (the provider asks for it for non-gpt-image models).
  async generate() {
    const result = await generateImage({
      model: openai().image(FLASH),
      prompt: "a cozy coffee shop",
      size: "1536x1024",
      maxRetries: 0,
    });
    return describe(result);
  },

  // An edit: the prompt carries the input image, so the provider posts multipart to /images/edits, with no
  // response_format, and reads b64_json from the answer.
  async edit() {
    const result = await generateImage({
      model: openai().image(FLASH),
      prompt: { text: "paint the walls blue", images: [new Uint8Array(inputPng())] },
      size: "1024x1024",
      maxRetries: 0,
    });
    return describe(result);
  },
});
