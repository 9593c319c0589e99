// The page for anything the admin refuses or cannot find: the status, and what to do.
import { Layout, type PageContext } from "../layout";

export function ErrorPage(props: { ctx: PageContext; status: number; title: string; message: string }) {
  return (
    <Layout ctx={props.ctx} title={props.title} section="none">
      <h1>{props.title}</h1>
      <p role="alert">{props.message}</p>
      <p class="muted">HTTP {props.status}</p>
      <p>
        <a href={props.ctx.session ? "/admin/webhooks" : "/admin/signin"}>{props.ctx.session ? "Back to the webhooks" : "Sign in"}</a>
      </p>
    </Layout>
  );
}
