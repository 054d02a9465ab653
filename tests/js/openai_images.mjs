// openai-node (the `openai` npm package) against pixelgate's OpenAI Images API.
import OpenAI, { toFile } from "openai";

import { FLASH, PRO, fetchPixels, inputPng, main, pngPixels, serverUrl } from "./common.mjs";

const client = () => new OpenAI({ baseURL: `${serverUrl()}/v1`, apiKey: "unused", maxRetries: 0 });

function describeImages(response) {
  return Promise.all(
    response.data.map(async (item) => ({
      url: item.url != null,
      b64_json: item.b64_json != null,
      url_pixels: item.url ? await fetchPixels(item.url) : null,
      b64_pixels: item.b64_json ? pngPixels(item.b64_json) : null,
    })),
  );
}

await main({
  // No response_format: the answer has a URL (and b64_json); the size is the model's nearest (3:2 at 1K).
  async generate() {
    const response = await client().images.generate({ model: FLASH, prompt: "a cozy coffee shop", size: "1536x1024" });
    return { size: response.size, images: await describeImages(response) };
  },

  // Streaming with partial images: the events as the SDK parsed them, each image's pixels from its header.
  async stream() {
    const stream = await client().images.generate({
      model: PRO,
      prompt: "a lighthouse at dusk",
      size: "1536x1024",
      stream: true,
      partial_images: 2,
    });
    const events = [];
    for await (const event of stream) {
      events.push({
        type: event.type,
        partial_image_index: event.partial_image_index ?? null,
        size: event.size,
        pixels: pngPixels(event.b64_json),
        output_tokens: event.usage?.output_tokens ?? null,
      });
    }
    return { events };
  },

  // An edit with an uploaded PNG (toFile: multipart, as the SDK sends it).
  async edit() {
    const image = await toFile(inputPng(), "room.png", { type: "image/png" });
    const response = await client().images.edit({
      model: FLASH,
      image,
      prompt: "paint the walls blue",
      size: "1024x1024",
    });
    return { size: response.size, images: await describeImages(response) };
  },
});
