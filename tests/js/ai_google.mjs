// The Vercel AI SDK (`ai`) with its Google provider (`@ai-sdk/google`) against pixelgate's Gemini API.
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { generateImage, generateText } from "ai";

import { FLASH, main, pngPixels, recordingFetch, serverUrl } from "./common.mjs";

const requests = [];
const google = () =>
  createGoogleGenerativeAI({ baseURL: `${serverUrl()}/v1beta`, apiKey: "unused", fetch: recordingFetch(requests) });

await main({
  // generateImage with an image model. This provider version sends a `gemini-*` model to :generateContent
  // (responseModalities IMAGE, imageConfig.aspectRatio); other names (Imagen) go to :predict.
  async image() {
    const result = await generateImage({
      model: google().image(FLASH),
      prompt: "a watercolor fox",
      aspectRatio: "16:9",
      maxRetries: 0,
    });
    return {
      images: result.images.map((image) => ({ mediaType: image.mediaType, pixels: pngPixels(image.uint8Array) })),
      warnings: result.warnings,
      requests,
    };
  },

  // generateImage with an Imagen model name (PIXELGATE_IMAGEN_MODEL: an operator's alias of a catalog
  // model), which this provider sends to :predict (instances, parameters.sampleCount and aspectRatio).
  async imagen() {
    const model = process.env.PIXELGATE_IMAGEN_MODEL;
    if (!model) throw new Error("PIXELGATE_IMAGEN_MODEL is not set");
    const result = await generateImage({
      model: google().image(model),
      prompt: "a watercolor fox",
      aspectRatio: "16:9",
      n: 2,
      maxRetries: 0,
    });
    return {
      images: result.images.map((image) => ({ mediaType: image.mediaType, pixels: pngPixels(image.uint8Array) })),
      distinct: new Set(result.images.map((image) => image.base64)).size,
      warnings: result.warnings,
      requests,
    };
  },

  // generateText with image output: the images come back as result.files.
  async text() {
    const result = await generateText({
      model: google()(FLASH),
      prompt: "a watercolor fox, and say what you drew",
      providerOptions: { google: { responseModalities: ["IMAGE", "TEXT"] } },
      maxRetries: 0,
    });
    return {
      text: result.text,
      files: result.files.map((file) => ({ mediaType: file.mediaType, pixels: pngPixels(file.uint8Array) })),
      finishReason: result.finishReason,
      usage: result.usage,
      requests,
    };
  },
});
