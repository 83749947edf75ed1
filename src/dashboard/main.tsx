// The dashboard's entry point in the browser (bundled into dist/dashboard/app.js).
import { render } from "preact";

function App() {
  return <h1>Fluster</h1>;
}

const root = document.getElementById("app");
if (root) render(<App />, root);
