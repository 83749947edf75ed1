// The dashboard's entry point in the browser (bundled into dist/dashboard/assets/app.js).
import { render } from "preact";
import { App } from "./app.js";

const root = document.getElementById("app");
if (root) render(<App />, root);
